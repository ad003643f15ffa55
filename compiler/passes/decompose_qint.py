"""MatMulInteger and QLinearMatMul in ops every backend has: Cast, Sub, Slice and an f32 MatMul.

The int32 product is exact in f32: each centred operand (x - zero point) lies in [-255, 255], so
a product is at most 65025 in magnitude and any partial sum of at most K_CHUNK of them stays below
2^24, where every integer is an f32 (in whatever order a GEMM adds them). Longer K is cut into
chunks of K_CHUNK whose f32 products are cast to int32 and added in int32, which wraps as
onnxruntime's int32 accumulators do. QLinearMatMul then requantizes as onnxruntime does, in f32:
round half to even of acc * (a_scale * b_scale / y_scale), plus the output zero point, saturated."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_qint import LEVELS, zero_point_shape
from .chain import Chain

K_CHUNK = (1 << 24) // (255 * 255)  # 258


def _centred(c: Chain, x: Value, zp: Value | None, row: bool) -> Value:
    """x - zp as f32 (exact: 8-bit integers), the zero point shaped to broadcast against x."""
    xf = c.add("Cast", [x], to="f32")
    if zp is None:
        return xf
    zf = c.add("Reshape", [c.add("Cast", [zp], to="f32")], shape=zero_point_shape(zp.type.shape, row))
    return c.add("Sub", [xf, zf])


def _k_slice(c: Chain, x: Value, axis: int, start: int, stop: int) -> Value:
    g = c.graph
    return c.add("Slice", [x, g.const("starts", np.array([start])), g.const("ends", np.array([stop])),
                           g.const("axes", np.array([axis]))])


def integer_product(c: Chain, a: Value, b: Value, a_zp: Value | None, b_zp: Value | None,
                    out: Value | None = None) -> Value:
    """(a - a_zp) @ (b - b_zp) as int32, from f32 products of at most K_CHUNK terms each."""
    af, bf = _centred(c, a, a_zp, row=True), _centred(c, b, b_zp, row=False)
    k = a.type.shape[-1]
    b_axis = 0 if b.type.rank == 1 else b.type.rank - 2
    starts = list(range(0, k, K_CHUNK))
    total = None
    for i, start in enumerate(starts):
        stop = min(start + K_CHUNK, k)
        ak, bk = (af, bf) if len(starts) == 1 else (_k_slice(c, af, a.type.rank - 1, start, stop),
                                                   _k_slice(c, bf, b_axis, start, stop))
        last = i == len(starts) - 1
        part = c.add("Cast", [c.add("MatMul", [ak, bk])], out if last and total is None else None, to="i32")
        total = part if total is None else c.add("Add", [total, part], out if last else None)
    return total


def _optional(node: Node, i: int) -> Value | None:
    return node.inputs[i] if len(node.inputs) > i else None


def matmul_integer(graph: Graph, node: Node) -> Patch | None:
    if node.op != "MatMulInteger":
        return None
    c = Chain(graph, node)
    integer_product(c, node.inputs[0], node.inputs[1], _optional(node, 2), _optional(node, 3), node.outputs[0])
    return Patch(c.nodes)


def qlinear_matmul(graph: Graph, node: Node) -> Patch | None:
    if node.op != "QLinearMatMul":
        return None
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = node.inputs
    c = Chain(graph, node)
    acc = c.add("Cast", [integer_product(c, a, b, a_zp, b_zp)], to="f32")
    b_s = c.add("Reshape", [b_s], shape=(b_s.type.numel,) if b_s.type.numel > 1 else ())
    multiplier = c.add("Div", [c.add("Mul", [c.add("Reshape", [a_s], shape=()), b_s]),
                               c.add("Reshape", [y_s], shape=())], exact=1)
    y = c.add("Round", [c.add("Mul", [acc, multiplier])])
    y = c.add("Add", [y, c.add("Reshape", [c.add("Cast", [y_zp], to="f32")], shape=())])
    dtype = node.outputs[0].type.dtype
    lo, hi = (graph.const(n, np.float32(v)) for n, v in zip(("lo", "hi"), LEVELS[dtype]))
    c.add("Cast", [c.add("Min", [c.add("Max", [y, lo]), hi])], node.outputs[0], to=dtype)
    return Patch(c.nodes)


RULES = [matmul_integer, qlinear_matmul]
