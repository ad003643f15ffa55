"""MaxPool and AveragePool over three or more spatial dims as 2-D pools the backends have.

A pooling window is a box, so it is separable: the max (or sum) over the box is the max (or sum)
over the last two dims, then over each leading dim in turn; an average's divisor (valid or padded
positions) is the product of the per-dim counts, so averaging dim by dim is exact too. Each stage
merges the dims it does not pool into the batch-like axes of an NCHW 2-D pool."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_nn import Window, channels_last, window
from .decompose_resize import _Nodes

POOLS = ("MaxPool", "AveragePool")


def pool_nd(graph: Graph, node: Node) -> Patch | None:
    x = node.inputs[0]
    if node.op not in POOLS or x.type.rank <= 4 or channels_last(node) or len(node.outputs) > 1:
        return None
    w, (n, c) = window(node), x.type.shape[:2]
    lead = w.size[:-2]
    nodes = _Nodes(graph, node)
    flat = nodes.add("Reshape", [x], shape=(n, c * int(np.prod(lead))) + w.size[-2:])
    y = _pool(nodes, node, flat, w, slice(-2, None))
    done = w.out[-2:]
    for i in reversed(range(len(lead))):
        shaped = nodes.add("Reshape", [y], shape=(n, c * int(np.prod(lead[:i])), lead[i], int(np.prod(done))))
        y = _pool(nodes, node, shaped, w, slice(i, i + 1))
        done = (w.out[i],) + done
    nodes.add("Reshape", [y], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(nodes.nodes)


def _pool(nodes: _Nodes, node: Node, x: Value, w: Window, dims: slice) -> Value:
    """A 2-D pool of `node`'s kind over the window's `dims` (one dim: as height, width 1)."""
    def pair(values: tuple[int, ...], filler: int) -> tuple[int, ...]:
        return values[dims] + (filler,) * (2 - len(values[dims]))

    attrs = dict(kernel_shape=pair(w.kernel, 1), strides=pair(w.strides, 1), dilations=pair(w.dilations, 1),
                 pads=pair(w.pads_begin, 0) + pair(w.pads_end, 0), ceil_mode=node.attr("ceil_mode", 0))
    if node.op == "AveragePool":
        attrs["count_include_pad"] = node.attr("count_include_pad", 0)
    return nodes.add(node.op, [x], **attrs)


RULES = [pool_nd]
