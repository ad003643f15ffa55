"""MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv in ops every backend has: Cast, Sub,
Pad, Slice, Transpose and f32 MatMul (a convolution is one product per kernel tap, never Winograd); a
grouped convolution is an f32 grouped Conv (no backend takes Winograd for groups), whole when each
output sums at most K_CHUNK products, else one per kernel tap.

The int32 product is exact in f32: each centred operand (x - zero point) lies in [-255, 255], so
a product is at most 65025 in magnitude and any partial sum of at most K_CHUNK of them stays below
2^24, where every integer is an f32 (in whatever order a GEMM adds them). Longer K is cut into
chunks of K_CHUNK whose f32 products are cast to int32 and added in int32, which wraps as
onnxruntime's int32 accumulators do. QLinearMatMul then requantizes as onnxruntime does, in f32:
round half to even of acc * (a_scale * b_scale / y_scale), plus the output zero point, saturated."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_nn import window
from ..ir.ops_qint import K_CHUNK, LEVELS, conv_geometry, zero_point_shape
from .chain import Chain



def _centred(c: Chain, x: Value, zp: Value | None) -> Value:
    """x - zp as f32 (exact: 8-bit integers), the zero point shaped to broadcast against x."""
    xf = c.add("Cast", [x], to="f32")
    if zp is None:
        return xf
    zf = c.add("Reshape", [c.add("Cast", [zp], to="f32")], shape=zero_point_shape(zp.type.shape))
    return c.add("Sub", [xf, zf])


def _k_slice(c: Chain, x: Value, axis: int, start: int, stop: int) -> Value:
    g = c.graph
    return c.add("Slice", [x, g.const("starts", np.array([start])), g.const("ends", np.array([stop])),
                           g.const("axes", np.array([axis]))])


def integer_product(c: Chain, a: Value, b: Value, a_zp: Value | None, b_zp: Value | None,
                    out: Value | None = None) -> Value:
    """(a - a_zp) @ (b - b_zp) as int32."""
    af, bf = _centred(c, a, a_zp), _centred(c, b, b_zp)
    return _exact_product(c, af, bf, a.type.shape[-1], a.type.rank, b.type.rank, out)


def _exact_product(c: Chain, af: Value, bf: Value, k: int, a_rank: int, b_rank: int,
                   out: Value | None = None) -> Value:
    """af @ bf (centred 8-bit values held as f32) as int32, from f32 products of at most K_CHUNK terms."""
    b_axis = 0 if b_rank == 1 else b_rank - 2
    starts = list(range(0, k, K_CHUNK))
    total = None
    for i, start in enumerate(starts):
        stop = min(start + K_CHUNK, k)
        ak, bk = (af, bf) if len(starts) == 1 else (_k_slice(c, af, a_rank - 1, start, stop),
                                                   _k_slice(c, bf, b_axis, start, stop))
        last = i == len(starts) - 1
        part = c.add("Cast", [c.add("MatMul", [ak, bk])], out if last and total is None else None, to="i32")
        total = part if total is None else c.add("Add", [total, part], out if last else None)
    return total


def integer_conv(c: Chain, geometry: Node, x: Value, w: Value, x_zp: Value | None, w_zp: Value | None) -> Value:
    """The 2-D convolution of centred x by centred w as int32 [N, OH, OW, M]: one exact product per
    kernel tap, [N, OH, OW, C] (a strided slice of x padded with zeros, i.e. with x_zp) by [C, M]."""
    g = c.graph
    win = window(geometry)
    xf = _centred(c, x, x_zp)
    wf = c.add("Cast", [w], to="f32")
    if w_zp is not None:
        wf = c.add("Sub", [wf, c.add("Reshape", [c.add("Cast", [w_zp], to="f32")],
                                     shape=(w_zp.type.numel, 1, 1, 1) if w_zp.type.numel > 1 else ())])
    padded = c.add("Pad", [xf, g.const("pads", np.array([0, 0, *win.pads_begin, 0, 0, *win.pads_end]))])
    if geometry.attr("group", 1) != 1:
        return _grouped_conv(c, geometry, padded, wf)
    cin, kh, kw = x.type.shape[1], *w.type.shape[2:]
    taps = []
    for i in range(kh):
        for j in range(kw):
            a = c.add("Transpose", [_tap(c, padded, win, i, j)], perm=(0, 2, 3, 1))
            b = c.add("Transpose", [_kernel_tap(c, wf, i, j, w.type.shape[:2])], perm=(1, 0))
            taps.append(_exact_product(c, a, b, cin, 4, 2))
    total = taps[0]
    for t in taps[1:]:
        total = c.add("Add", [total, t])
    return total


def _grouped_conv(c: Chain, geometry: Node, padded: Value, wf: Value) -> Value:
    """The grouped convolution of the padded centred input by the centred kernel as int32
    [N, OH, OW, M]: f32 Convs whose every output sums at most K_CHUNK products (exact), added in int32."""
    win = window(geometry)
    groups, (cg, kh, kw) = geometry.attr("group"), geometry.inputs[1].type.shape[1:]
    conv = dict(group=groups, pads=(0, 0, 0, 0), strides=tuple(win.strides))
    if cg * kh * kw <= K_CHUNK:
        parts = [c.add("Conv", [padded, wf], dilations=tuple(win.dilations), kernel_shape=(kh, kw), **conv)]
    else:
        conv["strides"] = (1, 1)
        parts = [c.add("Conv", [_tap(c, padded, win, i, j), _kernel_tap(c, wf, i, j, None)], kernel_shape=(1, 1),
                       **conv) for i in range(kh) for j in range(kw)]
    total = None
    for part in parts:
        part = c.add("Cast", [part], to="i32")
        total = part if total is None else c.add("Add", [total, part])
    return c.add("Transpose", [total], perm=(0, 2, 3, 1))


def _tap(c: Chain, padded: Value, win, i: int, j: int) -> Value:
    """The input's [N, C, OH, OW] values that kernel tap (i, j) multiplies: a strided slice of `padded`."""
    g = c.graph
    begin = (i * win.dilations[0], j * win.dilations[1])
    end = tuple(b + (o - 1) * s + 1 for b, o, s in zip(begin, win.out, win.strides))
    return c.add("Slice", [padded, g.const("starts", np.array(begin)), g.const("ends", np.array(end)),
                           g.const("axes", np.array([2, 3])), g.const("steps", np.array(win.strides))])


def _kernel_tap(c: Chain, wf: Value, i: int, j: int, m_c: tuple[int, int] | None) -> Value:
    """w[:, :, i, j] as [M, C] (as [M, C, 1, 1] when m_c is None)."""
    g = c.graph
    tap = c.add("Slice", [wf, g.const("starts", np.array([i, j])), g.const("ends", np.array([i + 1, j + 1])),
                          g.const("axes", np.array([2, 3]))])
    return tap if m_c is None else c.add("Reshape", [tap], shape=m_c)


def _optional(node: Node, i: int) -> Value | None:
    return node.inputs[i] if len(node.inputs) > i else None


def matmul_integer(graph: Graph, node: Node) -> Patch | None:
    if node.op != "MatMulInteger":
        return None
    c = Chain(graph, node)
    integer_product(c, node.inputs[0], node.inputs[1], _optional(node, 2), _optional(node, 3), node.outputs[0])
    return Patch(c.nodes)


def _requantize(c: Chain, acc: Value, x_s: Value, w_s: Value, y_s: Value, y_zp: Value, dtype: str,
                out: Value | None = None) -> Value:
    """round(acc * (x_scale * w_scale / y_scale)) + y_zp saturated, in f32; w_scale per tensor or per
    last axis of acc."""
    g = c.graph
    w_s = c.add("Reshape", [w_s], shape=(w_s.type.numel,) if w_s.type.numel > 1 else ())
    multiplier = c.add("Div", [c.add("Mul", [c.add("Reshape", [x_s], shape=()), w_s]),
                               c.add("Reshape", [y_s], shape=())], exact=1)
    y = c.add("Round", [c.add("Mul", [c.add("Cast", [acc], to="f32"), multiplier])])
    y = c.add("Add", [y, c.add("Reshape", [c.add("Cast", [y_zp], to="f32")], shape=())])
    lo, hi = (g.const(n, np.float32(v)) for n, v in zip(("lo", "hi"), LEVELS[dtype]))
    return c.add("Cast", [c.add("Min", [c.add("Max", [y, lo]), hi])], out, to=dtype)


def qlinear_matmul(graph: Graph, node: Node) -> Patch | None:
    if node.op != "QLinearMatMul":
        return None
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = node.inputs
    c = Chain(graph, node)
    _requantize(c, integer_product(c, a, b, a_zp, b_zp), a_s, b_s, y_s, y_zp, node.outputs[0].type.dtype,
                node.outputs[0])
    return Patch(c.nodes)


def conv_integer(graph: Graph, node: Node) -> Patch | None:
    if node.op != "ConvInteger":
        return None
    x, w = node.inputs[:2]
    c = Chain(graph, node)
    acc = integer_conv(c, conv_geometry(node, x, w), x, w, _optional(node, 2), _optional(node, 3))
    c.add("Transpose", [acc], node.outputs[0], perm=(0, 3, 1, 2))
    return Patch(c.nodes)


def qlinear_conv(graph: Graph, node: Node) -> Patch | None:
    if node.op != "QLinearConv":
        return None
    x, x_s, x_zp, w, w_s, w_zp, y_s, y_zp = node.inputs[:8]
    c = Chain(graph, node)
    acc = integer_conv(c, conv_geometry(node, x, w), x, w, x_zp, w_zp)
    if _optional(node, 8) is not None:
        acc = c.add("Add", [acc, node.inputs[8]])
    y = _requantize(c, acc, x_s, w_s, y_s, y_zp, node.outputs[0].type.dtype)
    c.add("Transpose", [y], node.outputs[0], perm=(0, 3, 1, 2))
    return Patch(c.nodes)


def max_pool_8bit(graph: Graph, node: Node) -> Patch | None:
    """MaxPool of uint8/int8 as the f32 pool of the same values (every 8-bit value is an f32)."""
    if node.op != "MaxPool" or node.inputs[0].type.dtype not in ("u8", "i8"):
        return None
    c, y = Chain(graph, node), node.outputs[0]
    pooled = c.add("MaxPool", [c.add("Cast", [node.inputs[0]], to="f32")], **node.attrs)
    c.add("Cast", [pooled], y, to=y.type.dtype)
    return Patch(c.nodes)


RULES = [matmul_integer, qlinear_matmul, conv_integer, qlinear_conv, max_pool_8bit]
