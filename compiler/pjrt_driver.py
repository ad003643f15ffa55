"""One compile for the PJRT platforms (tpu, cpu-xla): ONNX (+ weights) -> IR -> shape inference,
constant folding, DCE -> StableHLO module, weights file and manifest.

    compile_pjrt(Path("mnist.onnx"), platform="tpu").write(Path("out"))
    # out/model.mlir, out/weights.safetensors, out/manifest.json

The weights file is the CPU platform's format (same writer, 64-byte aligned data section); the
manifest names the function's arguments in order: weights first, then the model inputs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .artifacts import manifest_bytes, safetensors_bytes, weight_records, write_files
from .backend.stablehlo.module import build_program
from .errors import CompileError
from .frontend.onnx import load_onnx
from .ir.graph import Graph
from .ir.stats import graph_flops
from .ir.weights import WeightTable
from .passes.dce import dce
from .passes.infer import infer

PLATFORMS = ("tpu", "cpu-xla")


@dataclass
class CompiledProgram:
    name: str
    graph: Graph
    mlir: str
    weights_file: bytes
    manifest: dict

    def write(self, outdir: Path) -> None:
        files = {"model.mlir": self.mlir.encode(), "weights.safetensors": self.weights_file,
                 "manifest.json": manifest_bytes(self.manifest)}
        write_files(outdir, files)


def _tensors(values, names: list[str]) -> list[dict]:
    return [{"name": n, "dtype": v.type.dtype, "shape": list(v.type.shape)} for v, n in zip(values, names)]


def compile_pjrt(model: Path, weights: Path | None = None, platform: str = "tpu", batch: int = 1,
                 name: str | None = None) -> CompiledProgram:
    if platform not in PLATFORMS:
        raise CompileError(f"unknown PJRT platform {platform}; expected one of {', '.join(PLATFORMS)}")
    name = name or model.stem
    graph = load_onnx(model, weights, batch)
    in_names = [v.name for v in graph.inputs]
    out_names = [v.name for v in graph.outputs]
    graph = dce(infer(graph))
    program = build_program(graph, name)
    table = WeightTable()
    for weight, data in program.weights:
        table.add(weight, data)
    weights_file, data_start = safetensors_bytes(table)
    mlir = program.text
    manifest = {
        "format": "kiln-model/1",
        "name": name,
        "platform": platform,
        "batch": batch,
        "program": {"file": "model.mlir", "format": "mlir", "sha256": hashlib.sha256(mlir.encode()).hexdigest()},
        "inputs": _tensors(graph.inputs, in_names),
        "outputs": _tensors(graph.outputs, out_names),
        "weights": {"file": "weights.safetensors", "data_offset": data_start, "data_bytes": table.size,
                    "tensors": weight_records(table)},
        "arguments": [{"kind": "weight", "name": w} for w, _ in program.weights]
                     + [{"kind": "input", "name": n} for n in in_names],
        "flops": graph_flops(graph),
        "source": {"model": model.name, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
    }
    return CompiledProgram(name, graph, mlir, weights_file, manifest)
