"""Dead-code elimination: drop nodes none of whose outputs reach a graph output."""
from __future__ import annotations

from ..ir.graph import Graph


def dce(graph: Graph) -> Graph:
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs):
            kept.append(node)
            live.update(v for v in node.inputs if v is not None)
    graph.nodes = kept[::-1]
    return graph
