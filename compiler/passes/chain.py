"""Chain: the node builder the decomposition rules share."""

from __future__ import annotations

from ..ir.graph import Graph, Node, Value
from ..ir.ops_nn import reduce_axes


class Chain:
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
