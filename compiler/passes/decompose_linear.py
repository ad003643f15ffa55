"""ConvTranspose and Einsum in ops every backend has.

ConvTranspose as a Conv: the input with stride - 1 zeros inserted between its elements (a Pad
of a new unit axis after each spatial one, then a Reshape) and padded by kernel - 1 - pads (a
negative amount crops), convolved with stride 1 by the kernel flipped in space with its in/out
channels swapped per group (folded at build time for a constant kernel). Every product of the
transposed convolution is made once and the inserted zeros only add zeros, so NaN and infinities
go where they would.

Einsum as Transpose, Reshape, Gather (diagonals), ReduceSum and batched MatMul."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_linear import Equation, deconv, equation
from .chain import Chain


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _zero_inserted(c: Chain, x: Value, strides: tuple[int, ...]) -> Value:
    """x with stride - 1 zeros after each element along each spatial dim (trailing ones too)."""
    if all(s == 1 for s in strides):
        return x
    n, ch, *size = x.type.shape
    spread = (n, ch) + tuple(d for s in size for d in (s, 1))
    after = (0, 0) + tuple(d for s in strides for d in (0, s - 1))
    pads = c.graph.const("pads", _i64(*(0,) * len(after), *after))
    padded = c.add("Pad", [c.add("Reshape", [x], shape=spread), pads])
    return c.add("Reshape", [padded], shape=(n, ch) + tuple(d * s for d, s in zip(size, strides)))


def _flipped_kernel(c: Chain, w: Value, group: int) -> Value:
    """[C_in, C_out / g, k...] -> [C_out, C_in / g, k...] reversed along every spatial dim."""
    cin, cout_g, *k = w.type.shape
    nd = len(k)
    grouped = c.add("Reshape", [w], shape=(group, cin // group, cout_g, *k))
    swapped = c.add("Transpose", [grouped], perm=(0, 2, 1) + tuple(range(3, 3 + nd)))
    w = c.add("Reshape", [swapped], shape=(group * cout_g, cin // group, *k))
    backwards = np.full(nd, -1, np.int64)
    ends = np.full(nd, np.iinfo(np.int64).min, np.int64)
    return c.add("Slice", [w, c.graph.const("starts", backwards), c.graph.const("ends", ends),
                           c.graph.const("axes", np.arange(2, 2 + nd)), c.graph.const("steps", backwards)])


def conv_transpose(graph: Graph, node: Node) -> Patch | None:
    if node.op != "ConvTranspose":
        return None
    x, w = node.inputs[:2]
    geo, group, c = deconv(node), node.attr("group", 1), Chain(graph, node)
    up = _zero_inserted(c, x, geo.strides)
    begin = [k - 1 - b for k, b in zip(geo.kernels, geo.begin)]
    # whatever makes the stride-1 convolution's output exactly geo.out long
    end = [o + k - 1 - n * s - lo for o, k, n, s, lo in zip(geo.out, geo.kernels, x.type.shape[2:], geo.strides, begin)]
    padded = c.add("Pad", [up, graph.const("pads", _i64(0, 0, *begin, 0, 0, *end))])
    bias = node.inputs[2:3] if len(node.inputs) > 2 and node.inputs[2] is not None else []
    c.add("Conv", [padded, _flipped_kernel(c, w, group)] + bias, node.outputs[0], group=group,
          dilations=geo.dilations)
    return Patch(c.nodes)





class _Einsum:
    """Operands as (value, labels); every dim of a label has the label's full size (size-1 dims
    are expanded first), so shapes follow from the labels."""

    def __init__(self, c: Chain, eq: Equation) -> None:
        self.c, self.eq = c, eq

    def shape(self, labels: str) -> tuple[int, ...]:
        return tuple(self.eq.sizes[ch] for ch in labels)

    def full(self, x: Value, labels: str) -> Value:
        if x.type.shape == self.shape(labels):
            return x
        return self.c.add("Expand", [x, self.c.graph.const("shape", _i64(*self.shape(labels)))])

    def transpose(self, x: Value, labels: str, order: str) -> Value:
        """x's dims reordered to `order` (a repeated label's dims keep their relative order)."""
        if labels == order:
            return x
        places = {ch: [i for i, l in enumerate(labels) if l == ch] for ch in set(labels)}
        return self.c.add("Transpose", [x], perm=tuple(places[ch].pop(0) for ch in order))

    def diagonal(self, x: Value, labels: str) -> tuple[Value, str]:
        """Equal indices of a label repeated in one term: its two dims moved last, flattened, and
        the n diagonal positions gathered."""
        while len(set(labels)) < len(labels):
            ch = next(ch for ch in labels if labels.count(ch) > 1)
            rest = labels.replace(ch, "", 2)
            x = self.transpose(x, labels, rest + ch + ch)
            n = self.eq.sizes[ch]
            flat = self.c.add("Reshape", [x], shape=self.shape(rest) + (n * n,))
            x = self.c.add("Gather", [flat, self.c.graph.const("diagonal", np.arange(n) * (n + 1))], axis=len(rest))
            labels = rest + ch
        return x, labels

    def sum_out(self, x: Value, labels: str, keep: set[str]) -> tuple[Value, str]:
        gone = [i for i, ch in enumerate(labels) if ch not in keep]
        if not gone:
            return x, labels
        kept = "".join(ch for ch in labels if ch in keep)
        return self.c.add("ReduceSum", [x], axes=tuple(gone), keepdims=0), kept

    def contract(self, a: tuple[Value, str], b: tuple[Value, str], needed: set[str]) -> tuple[Value, str]:
        """One batched MatMul: [batch, left, summed] x [batch, summed, right]."""
        (x, la), (y, lb) = a, b
        batch = "".join(ch for ch in la if ch in lb and ch in needed)
        summed = "".join(ch for ch in la if ch in lb and ch not in needed)
        left, right = "".join(ch for ch in la if ch not in lb), "".join(ch for ch in lb if ch not in la)
        size = lambda labels: int(np.prod(self.shape(labels), dtype=np.int64))  # noqa: E731
        x = self.c.add("Reshape", [self.transpose(x, la, batch + left + summed)],
                       shape=(size(batch), size(left), size(summed)))
        y = self.c.add("Reshape", [self.transpose(y, lb, batch + summed + right)],
                       shape=(size(batch), size(summed), size(right)))
        product = self.c.add("MatMul", [x, y])
        return self.c.add("Reshape", [product], shape=self.shape(batch + left + right)), batch + left + right


def einsum(graph: Graph, node: Node) -> Patch | None:
    """Each operand's repeated labels to diagonals and its own labels summed out, then the
    operands contracted left to right with batched MatMuls, then the output's order."""
    if node.op != "Einsum":
        return None
    eq, c = equation(node), Chain(graph, node)
    e, operands = _Einsum(c, eq), []
    for i, (x, labels) in enumerate(zip(node.inputs, eq.inputs)):
        x, labels = e.diagonal(e.full(x, labels), labels)
        elsewhere = set(eq.output).union(*(t for j, t in enumerate(eq.inputs) if j != i))
        operands.append(e.sum_out(x, labels, elsewhere))
    acc = operands[0]
    for k, b in enumerate(operands[1:], 2):
        acc = e.contract(acc, b, set(eq.output).union(*eq.inputs[k:]))
    x, labels = e.sum_out(*acc, set(eq.output))
    c.add("Reshape", [e.transpose(x, labels, eq.output)], node.outputs[0], shape=e.shape(eq.output))
    return Patch(c.nodes)


RULES = [conv_transpose, einsum]
