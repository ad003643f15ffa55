"""One compile for any platform: ONNX (+ weights) -> IR -> the backend's passes -> its Backend.build
-> code files, weights.safetensors and manifest.json.

    compile(Path("mnist.onnx"), "rocm:gfx942").write(Path("out"))
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

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
            batch_sizes: Sequence[int] = (), shapes: Sequence[Shapes] = (),
            pad_values: Mapping[str, float] | None = None) -> Compiled:
    """Compile `model` for `platform` (`cpu`, `cuda:sm_89`, ...) and the launcher's `host`; `ptxas`
    checks CUDA kernels (default: the pinned one); `profile` is the CPU's JitModel.profile build;
    `input_shapes` fixes symbolic input dims and `input_values` inputs' values, by input name;
    `precision` ("highest" | "default") is the StableHLO dots' and convolutions'; `overlap_llvm`
    (for a compile that writes its files) starts the CPU objects while code is generated; `batch_sizes`
    compiles one shape bucket per leading batch dim into the one artifact instead of `batch`, `shapes`
    one per entry (input shapes over `input_shapes`); `pad_values` lets the launcher pad those inputs'
    non-leading dims up to a bucket's."""
    spec, archs = platforms.resolve(platform)
    host = platforms.host(host).name
    backend = spec.load_backend()
    _check_archs(backend, spec.name, archs)
    name = name or model.stem
    if pad_values and not (batch_sizes or shapes):
        raise CompileError("pad_values needs shapes or batch_sizes: there is no bucket to pad up to")
    if pad_values:
        buckets.check_platform(spec.name, "pad_values")
    if batch_sizes or shapes:
        specs = _bucket_specs(spec.name, batch, batch_sizes, shapes, input_shapes or {})
        target = Target(name, spec.name, archs, host, (), (), {"ptxas": ptxas}, profile=profile,
                        overlap_llvm=overlap_llvm, precision=precision, buckets=tuple(b for b, _ in specs))
        return _compile_buckets(model, weights, backend, target, specs, pad_values or {}, input_values,
                                not shapes)
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


def _compile_buckets(model: Path, weights: Path | None, backend: Backend, target: Target,
                     bucket_shapes: list[tuple[int, Shapes]], pad_values: Mapping[str, float],
                     input_values: Values | None, by_batch: bool) -> Compiled:
    """One compile per (batch, input shapes) bucket (`by_batch`: model(batch_sizes)), sharing one weights
    table, joined into one artifact whose manifest describes the first (smallest) bucket and lists them all."""
    graphs, names = [], ()
    for batch, shapes in bucket_shapes:
        graph = _bucket_graph(model, weights, batch, shapes, input_values, not by_batch)
        if by_batch:
            buckets.check_inputs(graph, batch)
        names = tuple(v.name for v in graph.inputs), tuple(v.name for v in graph.outputs)
        graphs.append(run_pipeline(graph, passes=backend.passes))
        check_ops(backend, graphs[-1])
    pads, follows = _padding(graphs, names, pad_values)
    if target.platform not in buckets.SHAPES_PLATFORMS:
        buckets.check_rows_cut(follows, names[1], target.platform, graphs[0].source)
    target = replace(target, input_names=names[0], output_names=names[1], pad_values=pads,
                     follows=tuple(tuple(None if f is None else tuple(f) for f in dims) for dims in follows))
    table, codes, entries = WeightTable(), [], []
    for i, graph in enumerate(graphs):
        code = backend.build(graph, replace(target, batch=bucket_shapes[i][0], bucket=i), table)
        codes.append(code)
        entries.append(buckets.entry(bucket_shapes[i][0], _padded(manifest.tensors(graph.inputs, names[0]), pads),
                                     _followed(manifest.tensors(graph.outputs, names[1]), follows, names[0]),
                                     code.section))
    weights_file, data_start = safetensors_bytes(table)
    first = entries[0]
    common = manifest.common(target.name, target.platform, first["batch"], first["inputs"], first["outputs"],
                             manifest.weights_entry(table, data_start), manifest.source_entry(model), entries)
    return Compiled(target.name, target.platform, graphs[0], common, weights_file, backend.join(codes))


def _padding(graphs: list[Graph], names: tuple[tuple[str, ...], tuple[str, ...]], pad_values: Mapping[str, float]
             ) -> tuple[tuple[float | None, ...], list[list]]:
    """Each input's pad value (None: only its leading dim pads) and, per output dim, the input dim it follows."""
    buckets.check_pad_values(pad_values, graphs[0])
    pads = tuple(pad_values.get(n) for n in names[0])
    paddable = [[d == 0 or p is not None for d in range(len(v.type.shape))] for v, p in zip(graphs[0].inputs, pads)]
    return pads, buckets.follows([[v.type.shape for v in g.inputs] for g in graphs],
                                 [[v.type.shape for v in g.outputs] for g in graphs], paddable, names[1],
                                 graphs[0].source)


def _bucket_specs(platform: str, batch: int, batch_sizes: Sequence[int], shapes: Sequence[Shapes],
                  input_shapes: Shapes) -> list[tuple[int, Shapes]]:
    """(batch, input shapes) per bucket, smallest first."""
    if batch_sizes and shapes:
        raise CompileError("give batch_sizes or shapes, not both")
    if batch_sizes:
        return [(b, buckets.shapes_at(input_shapes, b)) for b in buckets.check_sizes(batch_sizes)]
    buckets.check_platform(platform, "shapes")
    problem = buckets.shapes_problem(shapes)
    if problem:
        raise CompileError(f"shapes: {problem}")
    return [(batch, {**input_shapes, **entry}) for entry in buckets.sorted_shapes(shapes)]


def _bucket_graph(model: Path, weights: Path | None, batch: int, shapes: Shapes, input_values: Values | None,
                  from_entry: bool) -> Graph:
    """The bucket's graph; a compile error for shapes from model(shapes) names the entry."""
    try:
        return load_onnx(model, weights, batch, shapes, input_values)
    except CompileError as e:
        if not from_entry:
            raise
        raise CompileError(f"shapes entry { {k: list(v) for k, v in shapes.items()} }: {e}") from None


def _padded(tensors: list[dict], pads: tuple[float | None, ...]) -> list[dict]:
    return [{**t, "pad_value": p} if p is not None else t for t, p in zip(tensors, pads)]


def _followed(tensors: list[dict], follows: list[list], input_names: tuple[str, ...]) -> list[dict]:
    """Each output's `follows`: per dim the [input name, dim] it is cut back along, or null."""
    return [{**t, "follows": [None if f is None else [input_names[f[0]], f[1]] for f in dims]}
            for t, dims in zip(tensors, follows)]


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
