"""Sliding windows, one thread per output element (channels-last, channel fastest so a warp
reads consecutive channels): depthwise convolution with its epilogue, max and average pooling."""
from __future__ import annotations

import numpy as np

from ...errors import CompileError
from ...ir.graph import Node
from ...ir.ops_nn import spatial_2d
from .k_gemm import epilogue
from .kbase import BID, ELEMENT_BLOCK, TID, Builder, unravel
from .kir import Const, For, If, Kernel, Let, Load, Local, Store, Sym, ceil_div


def is_depthwise(node: Node) -> bool:
    w = node.inputs[1].type.shape
    return node.attr("group", 1) == w[0] and w[1] == 1


def _window_kernel(b: Builder, node: Node, kind: str, per_tap, init: float, finish) -> Kernel:
    """Loop over the KH x KW taps of output element i; per_tap(acc, img, ih, iw, ch) -> statements
    for a tap inside the input, finish(acc, count, idx) -> the stored value."""
    x, y = node.inputs[0], node.outputs[0]
    _, (H, W), (KH, KW), (SH, SW), (DH, DW), (PH, PW), (EH, EW), (OH, OW) = spatial_2d(node)
    c = x.type.shape[-1]
    n = y.type.numel
    acc, count = Local("acc", "f32", 1), Local("count", "f32", 2)
    i = Sym("i")
    img, oh, ow, ch = unravel(i, (x.type.shape[0], OH, OW, c))
    ih, iw = oh * SH + Sym("kh") * DH - PH, ow * SW + Sym("kw") * DW - PW
    inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    padded = (ih >= -PH) & (ih < H + EH) & (iw >= -PW) & (iw < W + EW)
    one = lambda k: Store(count, Const(k), Load(count, Const(k)) + Const(1.0, "f32"))  # noqa: E731
    taps = For("kh", KH, (For("kw", KW, (
        If(inside, (*per_tap(acc, img, ih, iw, ch), one(0))), If(padded, (one(1),)))),))
    body = (Let("i", BID * ELEMENT_BLOCK + TID), If(i < n, (
        Store(acc, Const(0), Const(init, "f32")), Store(count, Const(0), Const(0.0, "f32")),
        Store(count, Const(1), Const(0.0, "f32")), taps,
        Store(b.plan.buf(y), i, finish(Load(acc, Const(0)), count, [img, oh, ow, ch])))))
    return Kernel(b.name(node, kind), kind, ceil_div(n, ELEMENT_BLOCK), ELEMENT_BLOCK, body,
                  locals=(acc, count), nodes=(node.name,))


def depthwise(b: Builder, node: Node) -> list[Kernel]:
    x, wv, y = node.inputs[0], node.inputs[1], node.outputs[0]
    if wv.const is None:
        raise CompileError(f"Conv node {node.name}: GPU backends need build-time weights")
    _, (H, W), (KH, KW), *_ = spatial_2d(node)
    c = x.type.shape[-1]
    xbuf = b.plan.buf(x)
    wbuf = b.plan.weight(f"{wv.name}.hwc", np.ascontiguousarray(
        wv.const.reshape(c, KH, KW).transpose(1, 2, 0), np.float32))

    def tap(acc, img, ih, iw, ch):
        xv = Load(xbuf, ((img * H + ih) * W + iw) * c + ch)
        wt = Load(wbuf, (Sym("kh") * KW + Sym("kw")) * c + ch)
        return [Store(acc, Const(0), Load(acc, Const(0)) + xv * wt)]

    def finish(acc, count, idx):
        return epilogue(b, node, 2, idx if y.type.rank == 4 else [idx[0], idx[2], idx[3]], acc)

    return [_window_kernel(b, node, "depthwise", tap, 0.0, finish)]


def pool(b: Builder, node: Node) -> list[Kernel]:
    if node.attr("layout") != "NHWC":
        raise CompileError(f"{node.op} node {node.name}: only 1-D and 2-D pooling is supported")
    x = node.inputs[0]
    c = x.type.shape[-1]
    H, W = spatial_2d(node)[1]
    xbuf = b.plan.buf(x)
    is_max = node.op == "MaxPool"
    which = 1 if node.attr("count_include_pad", 0) else 0

    def tap(acc, img, ih, iw, ch):
        xv = Load(xbuf, ((img * H + ih) * W + iw) * c + ch)
        a = Load(acc, Const(0))
        return [Store(acc, Const(0), a.max(xv) if is_max else a + xv)]

    def finish(acc, count, idx):
        return acc if is_max else acc / Load(count, Const(which))

    return [_window_kernel(b, node, "pool", tap, float("-inf") if is_max else 0.0, finish)]
