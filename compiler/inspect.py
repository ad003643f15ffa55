"""`kiln inspect`: the graph a platform's backend receives, after its passes (or after each pass),
op by op with shapes and FLOPs, in the spirit of `tract dump`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .buckets import Shapes as BucketShapes, shapes_at, shapes_problem, size_problem, sorted_shapes
from .errors import CompileError
from .frontend.onnx import NATIVE_OPSET, Shapes, Values, load_onnx
from .ir.fused import program_text
from .ir.graph import Graph, Node
from .ir.ops_nn import window
from .ir.stats import node_flops
from .passes.pipeline import run_pipeline
from .platforms import resolve


def _flops(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _op(node: Node) -> str:
    extra = []
    if node.attr("layout") == "NHWC":
        extra.append("NHWC")
    if node.op in ("Conv", "MaxPool", "AveragePool"):
        w = window(node)
        extra.append("x".join(map(str, w.kernel)) + ("/" + "x".join(map(str, w.strides))
                                                      if set(w.strides) != {1} else ""))
        if node.attr("group", 1) > 1:
            extra.append(f"g{node.attr('group')}")
    text = node.op + (f"[{' '.join(extra)}]" if extra else "")
    prog = program_text(node)
    if node.op == "Fused":
        return f"Fused({prog})"
    return text + (f"+{prog}" if prog else "")


def _operand(v) -> str:
    kind = "const " if v.const is not None else ""
    return f"{kind}{v.type}"


def format_graph(graph: Graph, title: str) -> str:
    lines = [title]
    total = 0
    for i, node in enumerate(graph.nodes):
        flops = node_flops(node) if all(v.type for v in node.outputs) else 0
        total += flops
        ins = ", ".join(_operand(v) for v in node.inputs if v is not None)
        outs = ", ".join(str(v.type) for v in node.outputs)
        lines.append(f"{i:4d}  {_op(node):<34} {node.name:<20} {ins} -> {outs}  {_flops(flops)}")
    names = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
    lines.insert(1, f"  inputs: {names}")
    lines.append(f"  outputs: {', '.join(f'{v.name}: {v.type}' for v in graph.outputs)}")
    lines.append(f"  {len(graph.nodes)} nodes, {_flops(total)} FLOPs")
    return "\n".join(lines)


def inspect_model(path: Path | str, weights: Path | str | None = None, batch: int = 1,
                  every_pass: bool = False, platform: str = "cpu", input_shapes: Shapes | None = None,
                  input_values: Values | None = None) -> str:
    """The graph after all of `platform`'s passes; with every_pass, after each of them."""
    passes = resolve(platform)[0].load_backend().passes
    path = Path(path)
    graph = load_onnx(path, Path(weights) if weights else None, batch, input_shapes, input_values)
    stages: list[str] = []

    def trace(name: str, g: Graph) -> None:
        if every_pass:
            stages.append(format_graph(g, f"== after {name}: {path.name} (batch {batch})"))

    converted, fixed = graph.converted_from, graph.fixed_inputs
    graph = run_pipeline(graph, trace, passes)
    note = f"  converted from opset {converted} to {NATIVE_OPSET} by onnx.version_converter\n" if converted else ""
    note += "".join(f"  fixed input {name} = {value.tolist()} ({value.dtype}, folded at build time)\n"
                    for name, value in fixed.items())
    if every_pass:
        return note + "\n\n".join(stages) + "\n"
    return note + format_graph(graph, f"{path.name} (batch {batch}) after passes") + "\n"


def inspect_buckets(path: Path | str, batch_sizes: Sequence[int], weights: Path | str | None = None,
                    platform: str = "cpu", input_shapes: Shapes | None = None,
                    input_values: Values | None = None) -> str:
    """Each shape bucket's graph after the passes (model(batch_sizes)), smallest batch first."""
    problem = size_problem(list(batch_sizes))
    if problem:
        raise CompileError(f"batch_sizes {list(batch_sizes)}: {problem}")
    sizes = sorted(batch_sizes)
    parts = [f"== shape bucket {i + 1} of {len(sizes)}: batch {b}\n"
             + inspect_model(path, weights, b, platform=platform, input_shapes=shapes_at(input_shapes or {}, b),
                             input_values=input_values) for i, b in enumerate(sizes)]
    return "\n".join(parts)


def inspect_shapes(path: Path | str, entries: Sequence[BucketShapes], weights: Path | str | None = None,
                   platform: str = "cpu", input_shapes: Shapes | None = None,
                   input_values: Values | None = None) -> str:
    """Each shape bucket's graph after the passes (model(shapes)), smallest first."""
    problem = shapes_problem(entries)
    if problem:
        raise CompileError(f"shapes: {problem}")
    ordered = sorted_shapes(entries)
    parts = [f"== shape bucket {i + 1} of {len(ordered)}: {', '.join(f'{k} {list(v)}' for k, v in e.items())}\n"
             + inspect_model(path, weights, platform=platform, input_shapes={**(input_shapes or {}), **e},
                             input_values=input_values) for i, e in enumerate(ordered)]
    return "\n".join(parts)
