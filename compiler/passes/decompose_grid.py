"""AffineGrid as a MatMul of the build-time base grid by each transposed theta."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch
from ..ir.ops_grid import base_grid
from .decompose_resize import _Nodes


def affine_grid(graph: Graph, node: Node) -> Patch | None:
    if node.op != "AffineGrid":
        return None
    c = _Nodes(graph, node)
    theta_t = c.add("Transpose", node.inputs[:1], perm=(0, 2, 1))
    grid = c.add("MatMul", [graph.const("base_grid", base_grid(node).astype(np.float32)), theta_t])
    c.add("Reshape", [grid], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)
