"""Give every graph output its own buffer: outputs that are graph inputs, constants, repeated
values or aliases of those get an explicit copy, since the launcher hands each output its own
memory."""
from __future__ import annotations

from ..ir.fused import View
from ..ir.graph import Graph, Node, Value
from .fuse import IDENTITY


def alias_root(v: Value) -> Value:
    while v.producer is not None and v.producer.op == "Reshape":
        v = v.producer.inputs[0]
    return v


def materialize_outputs(graph: Graph) -> Graph:
    claimed: set[Value] = set()
    outputs = []
    for v in graph.outputs:
        root = alias_root(v)
        if root.producer is None or root in claimed:
            copy = graph.value(f"{v.name}.copy", v.type)
            graph.nodes.append(Node("Fused", f"{v.name}.copy", [v], [copy], {
                "program": IDENTITY, "views": (View.broadcast(v.type.shape, v.type.shape),),
                "shape": v.type.shape, "dtype": v.type.dtype}))
            v, root = copy, copy
        claimed.add(root)
        outputs.append(v)
    graph.outputs = outputs
    return graph
