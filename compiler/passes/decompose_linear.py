"""ConvTranspose as a Conv: the input with stride - 1 zeros inserted between its elements (a Pad
of a new unit axis after each spatial one, then a Reshape) and padded by kernel - 1 - pads (a
negative amount crops), convolved with stride 1 by the kernel flipped in space with its in/out
channels swapped per group (folded at build time for a constant kernel). Every product of the
transposed convolution is made once and the inserted zeros only add zeros, so NaN and infinities
go where they would."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_linear import deconv
from .decompose import _Chain


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _zero_inserted(c: _Chain, x: Value, strides: tuple[int, ...]) -> Value:
    """x with stride - 1 zeros after each element along each spatial dim (trailing ones too)."""
    if all(s == 1 for s in strides):
        return x
    n, ch, *size = x.type.shape
    spread = (n, ch) + tuple(d for s in size for d in (s, 1))
    after = (0, 0) + tuple(d for s in strides for d in (0, s - 1))
    padded = c.add("Pad", [c.add("Reshape", [x], shape=spread), c.graph.const("pads", _i64(*(0,) * len(after), *after))])
    return c.add("Reshape", [padded], shape=(n, ch) + tuple(d * s for d, s in zip(size, strides)))


def _flipped_kernel(c: _Chain, w: Value, group: int) -> Value:
    """[C_in, C_out / g, k...] -> [C_out, C_in / g, k...] reversed along every spatial dim."""
    cin, cout_g, *k = w.type.shape
    nd = len(k)
    grouped = c.add("Reshape", [w], shape=(group, cin // group, cout_g, *k))
    swapped = c.add("Transpose", [grouped], perm=(0, 2, 1) + tuple(range(3, 3 + nd)))
    w = c.add("Reshape", [swapped], shape=(group * cout_g, cin // group, *k))
    ends = np.full(nd, np.iinfo(np.int64).min, np.int64)
    return c.add("Slice", [w, c.graph.const("starts", np.full(nd, -1, np.int64)), c.graph.const("ends", ends),
                           c.graph.const("axes", np.arange(2, 2 + nd)), c.graph.const("steps", np.full(nd, -1, np.int64))])


def conv_transpose(graph: Graph, node: Node) -> Patch | None:
    if node.op != "ConvTranspose":
        return None
    x, w = node.inputs[:2]
    geo, group, c = deconv(node), node.attr("group", 1), _Chain(graph, node)
    up = _zero_inserted(c, x, geo.strides)
    begin = [k - 1 - b for k, b in zip(geo.kernels, geo.begin)]
    # whatever makes the stride-1 convolution's output exactly geo.out long
    end = [o + k - 1 - n * s - lo for o, k, n, s, lo in zip(geo.out, geo.kernels, x.type.shape[2:], geo.strides, begin)]
    padded = c.add("Pad", [up, graph.const("pads", _i64(0, 0, *begin, 0, 0, *end))])
    bias = node.inputs[2:3] if len(node.inputs) > 2 and node.inputs[2] is not None else []
    c.add("Conv", [padded, _flipped_kernel(c, w, group)] + bias, node.outputs[0], group=group,
          dilations=geo.dilations)
    return Patch(c.nodes)


RULES = [conv_transpose]
