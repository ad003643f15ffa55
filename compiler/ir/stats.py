"""Cost figures of a graph: FLOPs per node, as the ops define them."""
from __future__ import annotations

from .graph import Graph, Node
from .ops import OPS


def node_flops(node: Node) -> int:
    """The op's own FLOPs plus one per element for each fused epilogue instruction."""
    opdef = OPS[node.op]
    if node.op == "Fused":
        return opdef.flops(node)
    own = opdef.flops(node) if opdef.flops else 0
    return own + len(node.attrs.get("program", ())) * node.outputs[0].type.numel


def graph_flops(graph: Graph) -> int:
    return sum(node_flops(n) for n in graph.nodes)
