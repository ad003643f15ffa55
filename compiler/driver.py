"""One compile for any platform: ONNX (+ weights) -> IR -> the backend's passes -> its Backend.build
-> code files, weights.safetensors and manifest.json.

    compile(Path("mnist.onnx"), "rocm:gfx942").write(Path("out"))
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from . import buckets, manifest, platforms
from .artifacts import manifest_bytes, safetensors_bytes, write_files
from .backend.base import Backend, Code, Target
from .errors import CompileError
from .frontend.onnx import Shapes, Values, load_onnx
from .ir.graph import Graph
from .ir.weights import WeightTable
from .passes.pipeline import run_pipeline


@dataclass
class Compiled:
    name: str
    platform: str
    graph: Graph            # after the backend's passes
    common: dict            # the manifest's common fields
    weights_file: bytearray
    code: Code

    @property
    def manifest(self) -> dict:
        return manifest.combine(self.common, self.code.section)

    def write(self, outdir: Path) -> None:
        files = self.code.files()
        write_files(outdir, {**files, platforms.WEIGHTS_FILE: self.weights_file,
                             platforms.MANIFEST_FILE: manifest_bytes(self.manifest)})


def compile(model: Path, platform: str = "cpu", weights: Path | None = None, batch: int = 1,
            name: str | None = None, host: str = "linux-amd64", ptxas: Path | None = None,
            profile: bool = False, input_shapes: Shapes | None = None, precision: str = "highest",
            input_values: Values | None = None, overlap_llvm: bool = False,
            batch_sizes: Sequence[int] = ()) -> Compiled:
    """Compile `model` for `platform` (`cpu`, `cuda:sm_89`, ...) and the launcher's `host`; `ptxas`
    checks CUDA kernels (default: the pinned one); `profile` is the CPU's JitModel.profile build;
    `input_shapes` fixes symbolic input dims and `input_values` inputs' values, by input name;
    `precision` ("highest" | "default") is the StableHLO dots' and convolutions'; `overlap_llvm`
    (for a compile that writes its files) starts the CPU objects while code is generated; `batch_sizes`
    compiles one shape bucket per leading batch dim into the one artifact instead of `batch`."""
    spec, archs = platforms.resolve(platform)
    host = platforms.host(host).name
    backend = spec.load_backend()
    _check_archs(backend, spec.name, archs)
    name = name or model.stem
    if batch_sizes:
        target = Target(name, spec.name, archs, host, (), (), {"ptxas": ptxas}, profile=profile,
                        overlap_llvm=overlap_llvm, precision=precision,
                        buckets=buckets.check_sizes(batch_sizes))
        return _compile_buckets(model, weights, backend, target, input_shapes or {}, input_values)
    graph = load_onnx(model, weights, batch, input_shapes, input_values)
    in_names, out_names = tuple(v.name for v in graph.inputs), tuple(v.name for v in graph.outputs)
    graph = run_pipeline(graph, passes=backend.passes)
    check_ops(backend, graph)
    target = Target(name, spec.name, archs, host, in_names, out_names,
                    {"ptxas": ptxas}, profile=profile, overlap_llvm=overlap_llvm, precision=precision,
                    batch=batch)
    code = backend.build(graph, target)
    weights_file, data_start = safetensors_bytes(code.weights)
    common = manifest.common(name, spec.name, batch, manifest.tensors(graph.inputs, in_names),
                             manifest.tensors(graph.outputs, out_names),
                             manifest.weights_entry(code.weights, data_start), manifest.source_entry(model))
    return Compiled(name, spec.name, graph, common, weights_file, code)


def _compile_buckets(model: Path, weights: Path | None, backend: Backend, target: Target, input_shapes: Shapes,
                     input_values: Values | None) -> Compiled:
    """One compile per batch in target.buckets, sharing one weights table, joined into one artifact
    whose manifest describes the first (smallest) bucket and lists them all."""
    table, graphs, codes, entries = WeightTable(), [], [], []
    for batch in target.buckets:
        graph = load_onnx(model, weights, batch, buckets.shapes_at(input_shapes, batch), input_values)
        buckets.check_inputs(graph, batch)
        names = tuple(v.name for v in graph.inputs), tuple(v.name for v in graph.outputs)
        graph = run_pipeline(graph, passes=backend.passes)
        check_ops(backend, graph)
        buckets.check_outputs(graph, batch, names[1])
        code = backend.build(graph, replace(target, input_names=names[0], output_names=names[1], batch=batch),
                             table)
        graphs.append(graph)
        codes.append(code)
        entries.append(buckets.entry(batch, manifest.tensors(graph.inputs, names[0]),
                                     manifest.tensors(graph.outputs, names[1]), code.section))
    weights_file, data_start = safetensors_bytes(table)
    first = entries[0]
    common = manifest.common(target.name, target.platform, target.buckets[0], first["inputs"], first["outputs"],
                             manifest.weights_entry(table, data_start), manifest.source_entry(model), entries)
    return Compiled(target.name, target.platform, graphs[0], common, weights_file, backend.join(codes))


def _check_archs(backend: Backend, platform: str, archs: tuple[str, ...]) -> None:
    for arch in archs:
        if arch not in backend.archs:
            raise CompileError(f"unknown {platform} target {arch}; known: {', '.join(backend.archs)}")


def check_ops(backend: Backend, graph: Graph) -> None:
    problems = unsupported_ops(backend, graph)
    if problems:
        raise CompileError(problems[0])


def unsupported_ops(backend: Backend, graph: Graph) -> list[str]:
    """A line for every node of the graph (after the backend's passes) the backend cannot lower."""
    return [f"unsupported operator {node.op} at node {node.name} ({graph.source})"
            for node in graph.nodes if node.op not in backend.ops]
