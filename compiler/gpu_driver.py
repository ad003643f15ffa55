"""One GPU compile: ONNX (+ weights) -> IR -> passes -> kernel descriptions -> PTX + cubins
(cuda) or code objects (rocm), the device weights file and manifest.json.

    platform "cuda:sm_89" / "rocm:gfx942,gfx1100"; no list = the defaults."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import manifest_bytes, safetensors_bytes, weight_records
from .backend.gpu import amdgpu, codeobject, nvptx
from .backend.gpu.codegen import build_kernels
from .backend.gpu.kir import Kernel
from .backend.gpu.plan import BufferPlan
from .errors import CompileError
from .frontend.onnx import load_onnx
from .ir.graph import Graph
from .passes.pipeline import run_pipeline


@dataclass
class GpuCompiled:
    name: str
    platform: str
    targets: list[str]
    graph: Graph
    kernels: list[Kernel]
    plan: BufferPlan
    weights_file: bytes
    data_start: int
    manifest: dict
    files: dict[str, bytes] = field(default_factory=dict)

    def write(self, outdir: Path) -> None:
        outdir.mkdir(parents=True, exist_ok=True)
        files = dict(self.files, **{"weights.safetensors": self.weights_file,
                                    "manifest.json": manifest_bytes(self.manifest)})
        for name, data in sorted(files.items()):
            tmp = outdir / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(outdir / name)


def parse_platform(text: str) -> tuple[str, list[str]]:
    base, _, archs = text.partition(":")
    defaults = {"cuda": nvptx.DEFAULT_SMS, "rocm": amdgpu.DEFAULT_ARCHS}
    if base not in defaults:
        raise CompileError(f"unknown GPU platform {base}; expected cuda or rocm")
    targets = [a for a in archs.split(",") if a] or list(defaults[base])
    known = nvptx.PTX_ISA if base == "cuda" else codeobject.EF_AMDGPU_MACH
    for t in targets:
        if t not in known:
            raise CompileError(f"unknown {base} target {t}; known: {', '.join(known)}")
    return base, sorted(set(targets), key=targets.index)


def lower(model: Path, weights: Path | None, batch: int) -> tuple[Graph, list[Kernel], BufferPlan]:
    graph = run_pipeline(load_onnx(model, weights, batch))
    kernels, plan = build_kernels(graph)
    return graph, kernels, plan


def compile_gpu(model: Path, weights: Path | None = None, platform: str = "cuda", batch: int = 1,
                name: str | None = None, ptxas: Path | None = None) -> GpuCompiled:
    base, targets = parse_platform(platform)
    name = name or model.stem
    in_names = [v.name for v in load_onnx(model, weights, batch).inputs]
    graph, kernels, plan = lower(model, weights, batch)
    out_names = [v.name for v in graph.outputs]
    weights_file, data_start = safetensors_bytes(plan.weights)
    files: dict[str, bytes] = {}
    per_target = _cuda(kernels, targets, files, ptxas) if base == "cuda" else _rocm(kernels, targets, files)
    manifest = {
        "format": "kiln-gpu-model/1", "name": name, "platform": base, "targets": targets, "batch": batch,
        "inputs": [{"name": n, "dtype": v.type.dtype, "shape": list(v.type.shape)}
                   for n, v in zip(in_names, graph.inputs)],
        "outputs": [{"name": n, "dtype": v.type.dtype, "shape": list(v.type.shape)}
                    for n, v in zip(out_names, graph.outputs)],
        "weights": {"file": "weights.safetensors", "data_offset": data_start, "data_bytes": plan.weights.size,
                    "tensors": weight_records(plan.weights)},
        "buffers": plan.manifest(),
        "kernels": [{"name": k.name, "kind": k.kind, "grid": k.grid, "block": k.block,
                     "shared_bytes": k.shared_bytes, "nodes": list(k.nodes),
                     "targets": {t: per_target[t]["kernels"].get(k.name, {}) for t in targets}}
                    for k in kernels],
        "code": {t: {kk: v for kk, v in per_target[t].items() if kk != "kernels"} for t in targets},
        "source": {"model": model.name, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
    }
    if base == "cuda":
        manifest["ptx"] = {"file": f"{targets[-1]}.ptx", "sm": max(targets, key=lambda s: int(s[3:]))}
        manifest["min_driver"] = {"cubin": "580.65.06", "ptx": nvptx.min_driver(manifest["ptx"]["sm"])}
    return GpuCompiled(name, base, targets, graph, kernels, plan, weights_file, data_start, manifest, files)


def _cuda(kernels: list[Kernel], sms: list[str], files: dict, ptxas: Path | None) -> dict:
    from kiln.toolchain.ptxas import PtxasError, assemble

    text = nvptx.module_ir(kernels)
    newest = max(sms, key=lambda s: int(s[3:]))
    out = {}
    for sm in sms:
        ptx = nvptx.emit_ptx(text, sm)
        try:
            cubin, stats = assemble(ptx, sm, ptxas)
        except PtxasError as e:
            raise CompileError(str(e)) from None
        spills = [k for k, s in stats.items() if s["spill_store_bytes"] or s["spill_load_bytes"]]
        if spills:
            raise CompileError(f"{sm}: kernels spill registers: {', '.join(spills)}")
        files[f"{sm}.cubin"] = cubin
        if sm == newest:
            files[f"{sm}.ptx"] = ptx.encode()
        out[sm] = {"file": f"{sm}.cubin", "sha256": hashlib.sha256(cubin).hexdigest(),
                   "ptx_isa": f"{nvptx.PTX_ISA[sm][0] // 10}.{nvptx.PTX_ISA[sm][0] % 10}", "kernels": stats}
    return out


def _rocm(kernels: list[Kernel], archs: list[str], files: dict) -> dict:
    text = amdgpu.module_ir(kernels)
    out = {}
    for arch in archs:
        co = codeobject.link(amdgpu.emit_object(text, arch))
        codeobject.check(co, arch, [k.name for k in kernels])
        files[f"{arch}.co"] = co
        out[arch] = {"file": f"{arch}.co", "bytes": len(co), "sha256": hashlib.sha256(co).hexdigest(),
                     "kernels": {}}
    return out
