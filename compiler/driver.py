"""One compile: ONNX (+ weights) -> IR -> passes -> CPU module -> object, weights, manifest."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .artifacts import manifest_bytes, safetensors_bytes, weight_records, write_files
from .backend.cpu import aarch64, x86_64
from .backend.cpu.codegen import add_descriptor, build_module
from .backend.cpu.descriptor import TensorInfo, WeightInfo
from .backend.cpu.objfile import data_layout, emit_object
from .backend.cpu.target import Host
from .errors import CompileError
from .frontend.onnx import load_onnx
from .ir.graph import Graph
from .ir.stats import graph_flops
from .ir.weights import WeightTable
from .passes.pipeline import run_pipeline

HOSTS: dict[str, Host] = {h.name: h for h in (x86_64.HOST, aarch64.HOST)}


@dataclass
class Compiled:
    name: str
    host: Host
    graph: Graph
    llvm_ir: str            # unoptimised module text (the JIT harness optimises it for the host)
    weights_file: bytes
    manifest: dict
    kernels: dict           # variant -> [(node, function)] when compiled for profiling

    def write(self, outdir: Path) -> None:
        obj = emit_object(self.llvm_ir, self.host)
        self.manifest["object"] = {"file": "model.o", "sha256": hashlib.sha256(obj).hexdigest()}
        files = {"model.o": obj, "weights.safetensors": self.weights_file,
                 "manifest.json": manifest_bytes(self.manifest)}
        write_files(outdir, files)


def _tensors(values, names: list[str]) -> list[TensorInfo]:
    return [TensorInfo(n, v.type.dtype, v.type.shape) for v, n in zip(values, names)]


def compile_model(model: Path, weights: Path | None = None, host: str = "linux-amd64",
                  batch: int = 1, name: str | None = None, profile: bool = False) -> Compiled:
    """Compile; `profile` exports one function per node for `JitModel.profile` (not for
    shipping: it blocks inlining across nodes)."""
    if host not in HOSTS:
        raise CompileError(f"unknown host {host}; expected one of {', '.join(HOSTS)}")
    target = HOSTS[host]
    name = name or model.stem
    graph = load_onnx(model, weights, batch)
    in_names = [v.name for v in graph.inputs]
    out_names = [v.name for v in graph.outputs]
    graph = run_pipeline(graph)
    table = WeightTable()
    mod = build_module(graph, target, table, export_kernels=profile)
    mod.ir.data_layout = data_layout(target)
    records = weight_records(table)
    weights_file, data_start = safetensors_bytes(table)
    inputs, outputs = _tensors(graph.inputs, in_names), _tensors(graph.outputs, out_names)
    add_descriptor(mod, target, name, inputs, outputs,
                   [WeightInfo(r["name"], r["dtype"], tuple(r["shape"]), r["offset"], r["nbytes"],
                               bytes.fromhex(r["sha256"])) for r in records], table.size)
    manifest = {
        "format": "kiln-model/1",
        "name": name,
        "platform": "cpu",
        "host": target.name,
        "triple": target.triple,
        "abi_version": 1,
        "batch": batch,
        "inputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in outputs],
        "weights": {"file": "weights.safetensors", "data_offset": data_start,
                    "data_bytes": table.size, "tensors": records},
        "scratch_bytes": mod.plan.scratch_bytes,
        "variants": [{"name": v.name, "entry": e, "required_features": v.required_features}
                     for v, e in zip(target.variants, mod.entries)],
        "flops": graph_flops(graph),
        "source": {"model": model.name, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
    }
    return Compiled(name, target, graph, str(mod.ir), weights_file, manifest, mod.kernels)

