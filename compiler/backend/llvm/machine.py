"""Target machines and the optimisation pipeline: LLVM IR text -> verified, optimised module, for any
target."""
from __future__ import annotations

import llvmlite.binding as llvm

from ...errors import CompileError

_ready = False


def _init() -> None:
    global _ready
    if not _ready:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        _ready = True


def target_machine(triple: str, cpu: str, features: str, jit: bool = False, level: int = 3
                   ) -> llvm.TargetMachine:
    _init()
    target = llvm.Target.from_triple(triple)
    return target.create_target_machine(cpu=cpu, features=features, opt=level, reloc="pic",
                                        codemodel="jitdefault" if jit else "default", jit=jit)


def optimize(text: str, tm: llvm.TargetMachine, level: int = 3, unroll: bool = True) -> llvm.ModuleRef:
    """Parse, verify and run the O`level` pipeline (new pass manager), loops vectorised at any level
    and unrolled if `unroll`."""
    _init()
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as e:
        raise CompileError(f"internal error: generated LLVM IR is invalid: {str(e).splitlines()[0]}") \
            from None
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=level)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = unroll
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod

