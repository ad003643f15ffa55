"""Resize as ops every backend already lowers: per resized axis, sum_k Gather(x, index_k) * w_k with
build-time indices and weights (one Gather for nearest), then a Where for the positions
tf_crop_and_resize extrapolates."""
from __future__ import annotations

import numpy as np

from ..ir.graph import DTYPES, Graph, Node, Patch, Value
from ..ir.ops_resize import AxisMap, resize_plan


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
    for m in maps:
        x = _resize_axis(c, node, x, m)
    c.add("Reshape", [x], y, shape=y.type.shape)
    return Patch(c.nodes)


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
    if m.outside is not None:
        fill = c.graph.const("extrapolation_value",
                             np.asarray(node.attr("extrapolation_value", 0.0), DTYPES[data.dtype]))
        out = c.add("Where", [c.graph.const("resize_outside", m.outside.reshape((-1,) + trailing)), fill, out])
    return out
