"""Resize as ops every backend already lowers: per resized axis, sum_k Gather(x, index_k) * w_k with
build-time indices and weights, then a Where for the positions tf_crop_and_resize extrapolates.
Nearest over several axes is one Gather of the trailing dims flattened."""
from __future__ import annotations

import numpy as np

from ..ir.graph import DTYPES, Graph, Node, Patch, Value
from ..ir.ops_resize import AxisMap, resize_plan

# Above this many output positions per leading index, nearest over several axes gathers axis by axis.
MAX_FLAT_INDEX = 1 << 22


class _Nodes:
    """New nodes named after the Resize node, each with a fresh output unless given one."""

    def __init__(self, graph: Graph, node: Node) -> None:
        self.graph, self.node, self.nodes = graph, node, []

    def add(self, op: str, inputs: list[Value], out: Value | None = None, **attrs) -> Value:
        out = out or self.graph.value(f"{self.node.outputs[0].name}.{op.lower()}")
        self.nodes.append(Node(op, self.node.name, inputs, [out], attrs))
        return out


def resize(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Resize":
        return None
    x, y = node.inputs[0], node.outputs[0]
    _, maps = resize_plan(node)
    c = _Nodes(graph, node)
    first = min((m.axis for m in maps), default=0)
    if len(maps) > 1 and all(m.weight is None for m in maps) and np.prod(y.type.shape[first:]) <= MAX_FLAT_INDEX:
        x = _nearest_at_once(c, node, x, maps, first)
    else:
        for m in maps:
            x = _resize_axis(c, node, x, m)
    c.add("Reshape", [x], y, shape=y.type.shape)
    return Patch(c.nodes)


def _flat_index(node: Node, maps: list[AxisMap], first: int) -> np.ndarray:
    """For nearest over several axes: the input position, flattened from the first resized axis
    on, that each output position (flattened alike) reads."""
    shape, out = node.inputs[0].type.shape, node.outputs[0].type.shape
    by_axis = {m.axis: m.index[:, 0] for m in maps}
    strides = np.cumprod((1,) + shape[:first:-1])[::-1]
    flat = np.zeros((), np.int64)
    for d, stride in zip(range(first, len(shape)), strides):
        flat = np.add.outer(flat, by_axis.get(d, np.arange(out[d])) * stride)
    return flat.reshape(-1)


def _nearest_at_once(c: _Nodes, node: Node, x: Value, maps: list[AxisMap], first: int) -> Value:
    """One Gather over the trailing dims flattened: the output is written once, not once per axis."""
    shape, out = node.inputs[0].type.shape, node.outputs[0].type.shape
    flat = c.add("Reshape", [x], shape=shape[:first] + (int(np.prod(shape[first:])),))
    x = c.add("Gather", [flat, c.graph.const("resize_index", _flat_index(node, maps, first))], axis=first)
    x = c.add("Reshape", [x], shape=out)
    for m in maps:
        if m.outside is not None:
            x = _extrapolate(c, node, x, m)
    return x


def _resize_axis(c: _Nodes, node: Node, x: Value, m: AxisMap) -> Value:
    data = node.inputs[0].type
    trailing = (1,) * (data.rank - m.axis - 1)
    taps = []
    for k in range(m.index.shape[1]):
        tap = c.add("Gather", [x, c.graph.const("resize_index", m.index[:, k].copy())], axis=m.axis)
        if m.weight is not None:
            weight = c.graph.const("resize_weight", m.weight[:, k].astype(np.float32).reshape((-1,) + trailing))
            tap = c.add("Mul", [tap, weight])
        taps.append(tap)
    out = taps[0]
    for tap in taps[1:]:
        out = c.add("Add", [out, tap])
    return _extrapolate(c, node, out, m) if m.outside is not None else out


def _extrapolate(c: _Nodes, node: Node, x: Value, m: AxisMap) -> Value:
    data = node.inputs[0].type
    fill = c.graph.const("extrapolation_value", np.asarray(node.attr("extrapolation_value", 0.0), DTYPES[data.dtype]))
    outside = m.outside.reshape((-1,) + (1,) * (data.rank - m.axis - 1))
    return c.add("Where", [c.graph.const("resize_outside", outside), fill, x])
