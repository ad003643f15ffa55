"""A 3-D Conv as a sum over the kernel's depth of 2-D Convs (the cpu and GPU backends have 1-D
and 2-D ones; StableHLO's convolution is N-D and keeps it).

Output depth d reads input depth d * stride + k * dilation - pad for kernel depth k, so for each
k the depth slices every output needs are one strided Slice of the depth-padded input; they are
moved into the batch ([N * D_out, C, H, W]) and convolved with the kernel's k-th depth plane
(height and width pads, strides, dilations and groups as given); the bias goes to the first."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_nn import Window, channels_last, window
from .chain import Chain


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _depth_slice(c: Chain, x: Value, shape: tuple[int, ...], w: Window, k: int) -> Value:
    """[N * D_out, C, H, W]: the depth planes kernel depth k reads of x (the input of `shape`,
    padded in depth), in output order."""
    n, ch, _, h, wd = shape
    start, count = k * w.dilations[0], w.out[0]
    g = c.graph
    end = start + (count - 1) * w.strides[0] + 1
    planes = c.add("Slice", [x, g.const("starts", _i64(start)), g.const("ends", _i64(end)), g.const("axes", _i64(2)),
                             g.const("steps", _i64(w.strides[0]))])
    return c.add("Reshape", [c.add("Transpose", [planes], perm=(0, 2, 1, 3, 4))], shape=(n * count, ch, h, wd))


def conv_3d(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Conv" or node.inputs[0].type.rank != 5 or channels_last(node):
        return None
    x, weights, y = node.inputs[0], node.inputs[1], node.outputs[0]
    w, c, shape = window(node), Chain(graph, node), x.type.shape
    if w.pads_begin[0] or w.pads_end[0]:
        pads = graph.const("depth_pads", _i64(0, 0, w.pads_begin[0], 0, 0, 0, 0, w.pads_end[0], 0, 0))
        x = c.add("Pad", [x, pads])
    attrs = dict(group=node.attr("group", 1), strides=w.strides[1:], dilations=w.dilations[1:],
                 pads=w.pads_begin[1:] + w.pads_end[1:])
    bias = [b for b in node.inputs[2:3] if b is not None]
    total = None
    for k in range(w.kernel[0]):
        plane = c.add("Gather", [weights, graph.const("kernel_depth", np.int64(k))], axis=2)
        part = c.add("Conv", [_depth_slice(c, x, shape, w, k), plane] + (bias if k == 0 else []), **attrs)
        total = part if total is None else c.add("Add", [total, part])
    n, cout = y.type.shape[:2]
    split = c.add("Reshape", [total], shape=(n, w.out[0], cout) + w.out[1:])
    c.add("Transpose", [split], y, perm=(0, 2, 1, 3, 4))
    return Patch(c.nodes)


RULES = [conv_3d]
