"""The GPU Backends: kernel descriptions lowered to PTX plus a cubin per SM (cuda, checked by ptxas) or
to a code object per gfx arch (rocm, linked by zig's ld.lld), and the buffer plan the launcher follows."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

from ...errors import CompileError
from ...ir.graph import Graph
from ...ir.weights import WeightTable
from ...passes.pipeline import PIPELINE
from ...platforms import bucket_file, lowest_sm
from ..base import Target
from . import amdgpu, codeobject, nvptx
from .codegen import BUILDERS, build_kernels
from .kir import Kernel


@dataclass
class GpuCode:
    weights: WeightTable
    section: dict
    code_files: dict[str, bytes]

    def files(self) -> dict[str, bytes]:
        return self.code_files


KernelCompiler = Callable[[list[Kernel], Target, dict[str, bytes]], dict]


@dataclass(frozen=True)
class GpuBackend:
    name: str
    archs: tuple[str, ...]
    # per arch: its file's manifest entry and per-kernel facts; the code files go into the dict given
    compile_kernels: KernelCompiler
    loader_facts: Callable[[Target], dict] = lambda target: {}
    ops: frozenset[str] = frozenset({"Reshape", *BUILDERS})
    passes: tuple = tuple(PIPELINE)

    def build(self, graph: Graph, target: Target, weights: WeightTable | None = None) -> GpuCode:
        """`weights`: the table earlier shape buckets of the model filled, to share their tensors."""
        kernels, plan = build_kernels(graph, weights)
        files: dict[str, bytes] = {}
        per_target = self.compile_kernels(kernels, target, files)
        section = {
            "targets": list(target.archs),
            "buffers": plan.manifest(),
            "kernels": [{"name": k.name, "kind": k.kind, "grid": k.grid, "block": k.block,
                         "shared_bytes": k.shared_bytes, "nodes": list(k.nodes),
                         "targets": {t: per_target[t]["kernels"].get(k.name, {}) for t in target.archs}}
                        for k in kernels],
            "code": {t: {kk: v for kk, v in per_target[t].items() if kk != "kernels"} for t in target.archs},
            **self.loader_facts(target),
        }
        return GpuCode(plan.weights, section, files)

    def join(self, buckets: list[GpuCode]) -> GpuCode:
        """Shape buckets built over one weights table, each with its own code files (bucket_file): the
        manifest's top-level section is the first bucket's, the `buckets` list has every one's."""
        files = {name: data for b in buckets for name, data in b.code_files.items()}
        return GpuCode(buckets[0].weights, dict(buckets[0].section), files)


def _cuda(kernels: list[Kernel], target: Target, files: dict[str, bytes]) -> dict:
    from kiln.toolchain.ptxas import PtxasError, assemble

    text = nvptx.module_ir(kernels)
    lowest = lowest_sm(target.archs)
    out = {}
    for sm in target.archs:
        ptx = nvptx.emit_ptx(text, sm)
        try:
            cubin, stats = assemble(ptx, sm, target.tools.get("ptxas"))
        except PtxasError as e:
            raise CompileError(str(e)) from None
        spills = [k for k, s in stats.items() if s["spill_store_bytes"] or s["spill_load_bytes"]]
        if spills:
            raise CompileError(f"{sm}: kernels spill registers: {', '.join(spills)}")
        cubin_file = bucket_file(f"{sm}.cubin", target.batch, target.buckets)
        files[cubin_file] = cubin
        if sm == lowest:
            files[bucket_file(f"{sm}.ptx", target.batch, target.buckets)] = ptx.encode()
        isa = nvptx.PTX_ISA[sm][0]
        out[sm] = {"file": cubin_file, "sha256": hashlib.sha256(cubin).hexdigest(),
                   "ptx_isa": f"{isa // 10}.{isa % 10}", "kernels": stats}
    return out


def _cuda_loader_facts(target: Target) -> dict:
    """The PTX the driver JITs for GPUs without a cubin here, and the drivers that load each kind of
    code: as Linux driver versions for people, as cuDriverGetVersion numbers for the launcher."""
    from kiln.toolchain.ptxas import release

    lowest = lowest_sm(target.archs)
    releases = {"cubin": nvptx.cubin_release(release(target.tools.get("ptxas"))[0]),
                "ptx": nvptx.ptx_release(lowest)}
    return {"ptx": {"file": bucket_file(f"{lowest}.ptx", target.batch, target.buckets), "sm": lowest},
            "min_driver": {kind: nvptx.DRIVER_FOR_CUDA[r] for kind, r in releases.items()},
            "min_cuda": {kind: nvptx.driver_api_version(r) for kind, r in releases.items()}}


def _rocm(kernels: list[Kernel], target: Target, files: dict[str, bytes]) -> dict:
    text = amdgpu.module_ir(kernels)
    out = {}
    for arch in target.archs:
        co = codeobject.link(amdgpu.emit_object(text, arch))
        codeobject.check(co, arch, [k.name for k in kernels])
        co_file = bucket_file(f"{arch}.co", target.batch, target.buckets)
        files[co_file] = co
        out[arch] = {"file": co_file, "bytes": len(co), "sha256": hashlib.sha256(co).hexdigest(),
                     "kernels": {}}
    return out


CUDA = GpuBackend("nvptx", tuple(nvptx.PTX_ISA), _cuda, _cuda_loader_facts)
ROCM = GpuBackend("amdgpu", tuple(codeobject.EF_AMDGPU_MACH), _rocm)
