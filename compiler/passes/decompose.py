"""Ops every backend gets from others it already has: the Reduce family in terms of the five
reductions each implements (Sum, Mean, Max, Min, Prod) and elementwise ops; Pad as a Gather per
padded axis (the source positions of every mode are build-time constants) and, for constant
padding, a Where; LRN's sum over neighbouring channels as an average pooling of the squares;
CastLike as a Cast; Trilu as a Where with a constant mask; Instance/GroupNormalization as
reductions over each group; DepthToSpace/SpaceToDepth as reshape, transpose, reshape; Tile as a
Gather per repeated axis."""
from __future__ import annotations

import numpy as np

from ..ir.graph import DTYPES, Graph, Node, Patch, Value
from ..ir.ops_elementwise import trilu_mask
from ..ir.ops_nn import group_count, lrn_params, reduce_axes
from ..ir.ops_shape import pad_amounts, pad_source, space_depth_shapes, tile_repeats
from .infer import infer

PRIMITIVE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd")
# op -> (elementwise op before the sum, after it)
COMPOSITE = {"ReduceL1": ("Abs", None), "ReduceL2": ("Square", "Sqrt"), "ReduceSumSquare": ("Square", None),
             "ReduceLogSum": (None, "Log")}


class _Chain:
    """New nodes named after the rewritten one, each reading the last value by default."""

    def __init__(self, graph: Graph, node: Node) -> None:
        self.graph, self.node, self.nodes = graph, node, []

    def add(self, op: str, inputs: list[Value], out: Value | None = None, **attrs) -> Value:
        y = self.node.outputs[0]
        out = out or self.graph.value(f"{y.name}.{op.lower()}")
        self.nodes.append(Node(op, self.node.name, inputs, [out], attrs))
        return out

    def reduce(self, op: str, x: Value, keepdims: int, out: Value | None = None) -> Value:
        return self.add(op, [x], out, axes_norm=reduce_axes(self.node), keepdims=keepdims)


def _log_sum_exp(c: _Chain, x: Value, y: Value) -> None:
    """log(sum(exp(x - m))) + m with m the max, or 0 where the max is infinite (as onnxruntime:
    inf - inf would make NaN of an infinite result)."""
    m = c.reduce("ReduceMax", x, 1)
    infinite = c.add("Equal", [c.add("Abs", [m]), c.graph.const("inf", np.float32(np.inf))])
    m = c.add("Where", [infinite, c.graph.const("zero", np.float32(0)), m])
    total = c.reduce("ReduceSum", c.add("Exp", [c.add("Sub", [x, m])]), 1)
    c.add("Reshape", [c.add("Add", [c.add("Log", [total]), m])], y, shape=y.type.shape)


def pad(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Pad":
        return None
    x, y = node.inputs[0], node.outputs[0]
    value = node.inputs[2] if len(node.inputs) > 2 else None
    value = value or graph.const("zero", np.zeros((), DTYPES[x.type.dtype]))
    c = _Chain(graph, node)
    for axis, (begin, end) in enumerate(zip(*pad_amounts(node))):
        if begin == end == 0:
            continue
        src, inside = pad_source(node, axis)
        x = c.add("Gather", [x, graph.const("pad_source", src.astype(np.int64))], axis=axis)
        if not inside.all() and node.attr("mode", "constant") == "constant":
            mask = inside.reshape([-1 if d == axis else 1 for d in range(y.type.rank)])
            x = c.add("Where", [graph.const("pad_inside", mask), x, value])
    c.add("Reshape", [x], y, shape=y.type.shape)
    return Patch(c.nodes)


def lrn(graph: Graph, node: Node) -> Patch | None:
    """x * (bias + alpha * mean of x^2 over the size channels around)^-beta, the mean taken by an
    average pooling (zeros past the edges count) of x^2 reshaped to [N, 1, C, rest]."""
    if node.op != "LRN":
        return None
    x, y = node.inputs[0], node.outputs[0]
    size, alpha, beta, bias = lrn_params(node)
    shape = x.type.shape
    c = _Chain(graph, node)
    rest = int(np.prod(shape[2:], dtype=np.int64))
    square = c.add("Reshape", [c.add("Mul", [x, x])], shape=(shape[0], 1, shape[1], rest))
    mean = c.add("AveragePool", [square], kernel_shape=(size, 1), pads=((size - 1) // 2, 0, size // 2, 0),
                 count_include_pad=1)
    mean = c.add("Reshape", [mean], shape=shape)
    scale = c.add("Add", [c.add("Mul", [mean, graph.const("alpha", np.float32(alpha))]),
                          graph.const("bias", np.float32(bias))])
    c.add("Mul", [x, c.add("Pow", [scale, graph.const("beta", np.float32(-beta))])], y)
    return Patch(c.nodes)


def reduction(graph: Graph, node: Node) -> Patch | None:
    if node.op != "ReduceLogSumExp" and node.op not in COMPOSITE:
        return None
    x, y = node.inputs[0], node.outputs[0]
    c = _Chain(graph, node)
    if node.op == "ReduceLogSumExp":
        _log_sum_exp(c, x, y)
        return Patch(c.nodes)
    pre, post = COMPOSITE[node.op]
    if pre:
        x = c.add("Mul", [x, x]) if pre == "Square" else c.add(pre, [x])
    total = c.reduce("ReduceSum", x, node.attr("keepdims", 1), None if post else y)
    if post:
        c.add(post, [total], y)
    return Patch(c.nodes)


def normalise(graph: Graph, node: Node) -> Patch | None:
    """Axes from inputs or attributes into one attribute; a reduction over no axes is a copy."""
    if node.op not in PRIMITIVE:
        return None
    axes = reduce_axes(node)
    if not axes:
        return Patch([Node("Reshape", node.name, node.inputs[:1], node.outputs,
                           {"shape": node.outputs[0].type.shape})])
    if "axes_norm" in node.attrs:
        return None
    return Patch([Node(node.op, node.name, node.inputs[:1], node.outputs, dict(node.attrs, axes_norm=axes))])


def cast_like(graph: Graph, node: Node) -> Patch | None:
    if node.op != "CastLike":
        return None
    return Patch([Node("Cast", node.name, node.inputs[:1], node.outputs, {"to": node.inputs[1].type.dtype})])


def trilu(graph: Graph, node: Node) -> Patch | None:
    """Where(mask, x, 0): zeroes NaN and infinities too, which a multiply by 0 would not."""
    if node.op != "Trilu":
        return None
    x = node.inputs[0]
    mask = graph.const(f"{node.name}.mask", trilu_mask(node))
    zero = graph.const(f"{node.name}.zero", np.zeros((), DTYPES[x.type.dtype]))
    return Patch([Node("Where", node.name, [mask, x, zero], node.outputs)])


def group_norm(graph: Graph, node: Node) -> Patch | None:
    """(x - mean) / sqrt(var + epsilon) over each group of channels (with its spatial dims), then
    scale and bias per channel."""
    if node.op not in ("InstanceNormalization", "GroupNormalization"):
        return None
    x, scale, bias = node.inputs[:3]
    n, channels = x.type.shape[:2]
    groups, c = group_count(node), _Chain(graph, node)
    grouped = c.add("Reshape", [x], shape=(n, groups, x.type.numel // (n * groups)))
    mean = c.add("ReduceMean", [grouped], axes_norm=(2,), keepdims=1)
    centred = c.add("Sub", [grouped, mean])
    var = c.add("ReduceMean", [c.add("Mul", [centred, centred])], axes_norm=(2,), keepdims=1)
    std = c.add("Sqrt", [c.add("Add", [var, graph.const("epsilon", np.float32(node.attr("epsilon", 1e-5)))])])
    normed = c.add("Reshape", [c.add("Div", [centred, std])], shape=x.type.shape)
    per_channel = (channels,) + (1,) * (x.type.rank - 2)
    scale, bias = (_per_channel(c, v, channels, groups, per_channel) for v in (scale, bias))
    c.add("Add", [c.add("Mul", [normed, scale]), bias], node.outputs[0])
    return Patch(c.nodes)


def _per_channel(c: _Chain, v: Value, channels: int, groups: int, shape: tuple[int, ...]) -> Value:
    """A [C] (or, GroupNormalization-18's, [G]) vector shaped to broadcast over [N, C, ...]."""
    if v.type.numel == groups != channels:
        v = c.add("Gather", [v, c.graph.const("group_of", np.arange(channels) // (channels // groups))], axis=0)
    return c.add("Reshape", [v], shape=shape)


def space_depth(graph: Graph, node: Node) -> Patch | None:
    if node.op not in ("DepthToSpace", "SpaceToDepth"):
        return None
    first, perm, _ = space_depth_shapes(node)
    c = _Chain(graph, node)
    moved = c.add("Transpose", [c.add("Reshape", node.inputs[:1], shape=first)], perm=perm)
    c.add("Reshape", [moved], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


def tile(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Tile":
        return None
    x, c = node.inputs[0], _Chain(graph, node)
    for axis, (size, times) in enumerate(zip(x.type.shape, tile_repeats(node))):
        if times != 1:
            x = c.add("Gather", [x, graph.const("tile_source", np.arange(size * times) % max(size, 1))], axis=axis)
    c.add("Reshape", [x], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


RULES = [pad, lrn, reduction, normalise, cast_like, trilu, group_norm, space_depth, tile]


def decompose(graph: Graph) -> Graph:
    """The pass for backends that skip `lower` (StableHLO)."""
    for rule in RULES:
        if graph.rewrite(rule):
            infer(graph)
    return graph
