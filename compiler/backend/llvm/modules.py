"""Optimising many LLVM modules at once, on the build machine's cores, into bitcode (linked into one
module, for the JIT) or into relocatable objects (code generation in the same workers).

Each module is optimised on its own, so the result does not depend on how many processes share
the work: the same modules give the same bytes on one core or sixty-four."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from typing import Sequence

import llvmlite.binding as llvm

from ...errors import CompileError
from .machine import optimize, target_machine

# Below this much IR text the workers' start-up (importing llvmlite) costs more than they save.
PARALLEL_MIN_BYTES = 2_000_000


@dataclass(frozen=True)
class Machine:
    """What a worker needs to rebuild the target machine (TargetMachine objects do not pickle)."""
    triple: str
    cpu: str
    features: str
    jit: bool = False

    def create(self, level: int = 3) -> llvm.TargetMachine:
        return target_machine(self.triple, self.cpu, self.features, self.jit, level)


@dataclass(frozen=True)
class Output:
    """What each module becomes: bitcode, or an object file in which the functions named `hidden`
    stay out of the dynamic symbol table of the executable it is linked into."""
    objects: bool = False
    hidden: frozenset[str] = frozenset()


BITCODE = Output()


@dataclass(frozen=True)
class Optimized:
    code: bytes      # bitcode or object file, as the Output asked
    seconds: float


def jobs() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def optimize_all(texts: Sequence[str], machine: Machine, workers: int | None = None,
                 min_bytes: int = PARALLEL_MIN_BYTES, output: Output = BITCODE,
                 levels: Sequence[int] | None = None) -> list[Optimized]:
    """Every module optimised (at its level of `levels`, default O3) into `output`, in the order
    given; in `workers` processes (default: one per core) when there are at least `min_bytes` of IR."""
    work = list(zip(texts, levels or [3] * len(texts)))
    workers = min(workers or jobs(), len(texts))
    if workers < 2 or sum(map(len, texts)) < min_bytes:
        return [_optimize_one(t, level, machine, output) for t, level in work]
    groups = _balance([len(t) for t in texts], workers)
    with ThreadPoolExecutor(len(groups)) as pool:
        results = list(pool.map(lambda g: _worker([work[i] for i in g], machine, output), groups))
    out: dict[int, Optimized] = {}
    for group, optimized in zip(groups, results):
        out.update(zip(group, optimized))
    return [out[i] for i in range(len(texts))]


def _balance(sizes: list[int], workers: int) -> list[list[int]]:
    """Module indices in `workers` groups of about equal IR size (largest first, to the lightest)."""
    groups: list[list[int]] = [[] for _ in range(workers)]
    load = [0] * workers
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        j = load.index(min(load))
        groups[j].append(i)
        load[j] += sizes[i]
    return [g for g in groups if g]


def _worker(work: list[tuple[str, int]], machine: Machine, output: Output) -> list[Optimized]:
    """A fresh interpreter (this module's main) optimises `work` (module texts and levels): no fork
    of a process that may run threads, and no re-import of the caller's main script."""
    proc = subprocess.run([sys.executable, "-m", __name__], input=pickle.dumps((work, machine, output)),
                          capture_output=True, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines() or [f"exit {proc.returncode}"]
        raise CompileError(f"LLVM worker failed: {reason[-1]}")
    result = pickle.loads(proc.stdout)
    if isinstance(result, str):
        raise CompileError(result)
    return [Optimized(*r) for r in result]


def _optimize_one(text: str, level: int, machine: Machine, output: Output) -> Optimized:
    start = time.perf_counter()
    tm = machine.create(level)
    mod = optimize(text, tm, level)
    if not output.objects:
        return Optimized(mod.as_bitcode(), time.perf_counter() - start)
    for fn in mod.functions:
        if fn.name in output.hidden and not fn.is_declaration:
            fn.visibility = llvm.Visibility.hidden
    return Optimized(tm.emit_object(mod), time.perf_counter() - start)


def link(modules: Sequence[Optimized], internal: Sequence[str] = ()) -> llvm.ModuleRef:
    """One module holding all of them; the functions named in `internal` become private to it."""
    main = llvm.parse_bitcode(modules[0].code)
    for m in modules[1:]:
        main.link_in(llvm.parse_bitcode(m.code))
    for name in internal:
        main.get_function(name).linkage = llvm.Linkage.internal
    return main


def _main() -> None:
    work, machine, output = pickle.loads(sys.stdin.buffer.read())
    try:
        # plain tuples: this module is __main__ here, its classes would not unpickle outside
        result: list[tuple[bytes, float]] | str = [astuple(_optimize_one(t, level, machine, output))
                                                        for t, level in work]
    except CompileError as e:
        result = str(e)
    sys.stdout.buffer.write(pickle.dumps(result))


if __name__ == "__main__":
    _main()
