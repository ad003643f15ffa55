"""Conv (channels-last) on the GEMM driver, by one of four routes:
- winograd: 3x3 stride 1 with enough output (k_winograd);
- direct: 1x1, stride 1, no padding — the input rows are A as they are;
- implicit: the input is copied once into a zero-padded buffer and each output row is a
  GEMM summing KH*KW shifted views of it (taps), so nothing 9x the input is built;
- im2col: A is gathered explicitly (small channel counts, narrow outputs).
Depthwise convs run their own direct kernel (k_depthwise)."""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np

from ...errors import CompileError
from ...ir.graph import Node
from ...ir.ops_nn import spatial_2d
from ..llvm.emit import F32, Fn
from .context import Context
from .k_depthwise import emit_depthwise, is_depthwise
from .k_gemm import NR, gemm
from .k_gemm_micro import Epilogue, pack_b
from .k_pool import in_range
from .k_winograd import emit_winograd, winograd_fits, winograd_temp_bytes

IM2COL_ROWS = 64          # rows per im2col task
IMPLICIT_MIN_WIDTH = 24   # output rows narrower than this waste too much of a 6-row tile
IMPLICIT_MIN_CHANNELS = 16  # per tap, when taps are single kernel elements


@dataclass(frozen=True)
class ConvShape:
    n: int
    groups: int
    cin: int
    cg: int        # input channels per group
    coutg: int     # output channels per group
    size: tuple[int, int]
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int]
    out: tuple[int, int]

    @staticmethod
    def of(node: Node) -> "ConvShape":
        w = node.inputs[1].type.shape
        g = node.attr("group", 1)
        _, size, kernel, strides, dil, pads, _, out = spatial_2d(node)
        x = node.inputs[0].type.shape
        return ConvShape(x[0], g, x[-1], w[1], w[0] // g, size, kernel, strides, dil, pads, out)

    @property
    def route(self) -> str:
        if self.kernel == (1, 1) and self.strides == (1, 1) and self.pads == (0, 0):
            return "direct"
        if winograd_fits(self.n, self.out, self.kernel, self.strides, self.dilations, self.groups, self.cin):
            return "winograd"
        if self.out[1] >= IMPLICIT_MIN_WIDTH and (self.row_taps or self.cg >= IMPLICIT_MIN_CHANNELS):
            return "implicit"
        return "im2col"

    @property
    def row_taps(self) -> bool:
        """One tap per kernel row: its KW*cin inputs are contiguous in a padded NHWC row."""
        return self.dilations[1] == 1 and self.groups == 1

    @property
    def padded(self) -> tuple[int, int]:
        """Extent of the zero-padded input the implicit route reads."""
        return tuple(max(p + s, (o - 1) * st + (k - 1) * d + 1) for p, s, o, st, k, d in
                     zip(self.pads, self.size, self.out, self.strides, self.kernel, self.dilations))


def conv_temp_bytes(node: Node) -> int:
    if node.attr("layout") != "NHWC" or is_depthwise(node):
        return 0
    c = ConvShape.of(node)
    if c.route == "winograd":
        return winograd_temp_bytes(c.n, c.out, c.cin, c.coutg)
    if c.route == "implicit":
        return c.n * c.padded[0] * c.padded[1] * c.cin * 4
    if c.route == "im2col":
        return c.n * c.out[0] * c.out[1] * c.groups * c.kernel[0] * c.kernel[1] * c.cg * 4
    return 0


def emit_conv(ctx: Context, f: Fn, node: Node) -> None:
    if node.attr("layout") != "NHWC":
        raise CompileError(f"Conv node {node.name}: only 1-D, 2-D and 3-D convolutions are supported")
    if node.inputs[1].const is None:
        raise CompileError(f"Conv node {node.name}: weights must be constant")
    if is_depthwise(node):
        emit_depthwise(ctx, f, node)
        return
    c = ConvShape.of(node)
    if c.route == "winograd":
        emit_winograd(ctx, f, node, c.size, c.pads, c.out)
        return
    wv = node.inputs[1]
    (KH, KW), g = c.kernel, c.groups
    k = KH * KW * c.cg
    # [Cout, Cg, KH, KW] -> per group [KH*KW*Cg, Coutg] (rows ordered kh, kw, channel), packed.
    wk = wv.const.reshape(g, c.coutg, c.cg, KH, KW).transpose(0, 3, 4, 2, 1).reshape(g, k, c.coutg)
    data = ctx.derived(f"{wv.name}.packed", lambda: np.concatenate([pack_b(wi, NR) for wi in wk]))
    psize = data.size // g

    def b_at(t: Fn, i: ir.Value) -> ir.Value:
        return t.gep(ctx.weight(t, f"{wv.name}.packed", data), t.b.mul(i, t.i64(psize)))

    {"direct": _direct, "implicit": _implicit, "im2col": _im2col}[c.route](ctx, f, node, c, b_at)


def _direct(ctx: Context, f: Fn, node: Node, c: ConvShape, b_at) -> None:
    x, y = node.inputs[0], node.outputs[0]
    m, cout = c.n * c.out[0] * c.out[1], c.groups * c.coutg
    gemm(ctx, f, Epilogue.of(node, 2), m, c.coutg, c.cg, c.groups,
         lambda t, i: t.gep(ctx.ptr(t, x), t.b.mul(i, t.i64(c.cg))), c.cin, b_at, True,
         lambda t, i: t.gep(ctx.ptr(t, y), t.b.mul(i, t.i64(c.coutg))), cout,
         lambda t, i: t.i64(0), lambda t, i: t.b.mul(i, t.i64(c.coutg)))


def _implicit(ctx: Context, f: Fn, node: Node, c: ConvShape, b_at) -> None:
    x, y = node.inputs[0], node.outputs[0]
    (H, W), (HP, WP), (OH, OW) = c.size, c.padded, c.out
    (PH, PW), (SH, SW), (DH, DW), (KH, KW) = c.pads, c.strides, c.dilations, c.kernel
    cin, cout = c.cin, c.groups * c.coutg

    def pad_row(t: Fn, r: ir.Value) -> None:
        b = t.b
        img, hp = b.udiv(r, t.i64(HP)), b.urem(r, t.i64(HP))
        dst = t.gep(ctx.temp(t, node), b.mul(r, t.i64(WP * cin)))
        ih = b.sub(hp, t.i64(PH))
        with t.if_else(in_range(t, ih, 0, H)) as (then, other):
            with then:
                src = t.gep(ctx.ptr(t, x), t.madd((img, H * W * cin), (ih, W * cin)))
                _fill(t, dst, 0, PW * cin)
                with t.loop(W * cin) as j:
                    b.store(b.load(t.gep(src, j), typ=F32), t.gep(dst, b.add(j, t.i64(PW * cin))))
                _fill(t, dst, (PW + W) * cin, WP * cin)
            with other:
                _fill(t, dst, 0, WP * cin)

    ctx.parallel(f, "pad", c.n * HP, c.n * HP * WP * cin, pad_row)
    rows = c.n * OH
    if c.row_taps:
        taps, tap_k = tuple((kh * DH * WP * cin, kh * KW * cin) for kh in range(KH)), KW * cin
    else:
        taps, tap_k = tuple(((kh * DH * WP + kw * DW) * cin, (kh * KW + kw) * c.cg)
                            for kh in range(KH) for kw in range(KW)), c.cg

    def split(t: Fn, i: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
        r = t.b.urem(i, t.i64(rows))
        return t.b.udiv(i, t.i64(rows)), t.b.udiv(r, t.i64(OH)), t.b.urem(r, t.i64(OH))

    def a_at(t: Fn, i: ir.Value) -> ir.Value:
        gi, img, oh = split(t, i)
        return t.gep(ctx.temp(t, node), t.madd((img, HP * WP * cin), (oh, SH * WP * cin), (gi, c.cg)))

    def c_at(t: Fn, i: ir.Value) -> ir.Value:
        gi, img, oh = split(t, i)
        return t.gep(ctx.ptr(t, y), t.madd((img, OH * OW * cout), (oh, OW * cout), (gi, c.coutg)))

    def row0_at(t: Fn, i: ir.Value) -> ir.Value:
        _, img, oh = split(t, i)
        return t.madd((img, OH * OW), (oh, OW))

    gemm(ctx, f, Epilogue.of(node, 2), OW, c.coutg, tap_k, c.groups * rows, a_at, SW * cin,
         lambda t, i: b_at(t, split(t, i)[0]), True, c_at, cout, row0_at,
         lambda t, i: t.b.mul(split(t, i)[0], t.i64(c.coutg)), taps)


def _fill(t: Fn, dst: ir.Value, start: int, stop: int) -> None:
    if stop > start:
        with t.loop(stop, start) as j:
            t.b.store(t.const_f(0.0, F32), t.gep(dst, j))


def _im2col(ctx: Context, f: Fn, node: Node, c: ConvShape, b_at) -> None:
    y = node.outputs[0]
    m, k = c.n * c.out[0] * c.out[1], c.kernel[0] * c.kernel[1] * c.cg
    chunks = -(-m // IM2COL_ROWS)

    def rows_task(t: Fn, flat: ir.Value) -> None:
        b = t.b
        gi, m0 = b.udiv(flat, t.i64(chunks)), b.mul(b.urem(flat, t.i64(chunks)), t.i64(IM2COL_ROWS))
        rest = b.sub(t.i64(m), m0)
        _im2col_rows(ctx, t, node, c, gi, m0,
                     b.select(b.icmp_signed("<", rest, t.i64(IM2COL_ROWS)), rest, t.i64(IM2COL_ROWS)))

    ctx.parallel(f, "im2col", c.groups * chunks, c.groups * m * k, rows_task)
    cout = c.groups * c.coutg
    gemm(ctx, f, Epilogue.of(node, 2), m, c.coutg, k, c.groups,
         lambda t, i: t.gep(ctx.temp(t, node), t.b.mul(i, t.i64(k))), c.groups * k, b_at, True,
         lambda t, i: t.gep(ctx.ptr(t, y), t.b.mul(i, t.i64(c.coutg))), cout,
         lambda t, i: t.i64(0), lambda t, i: t.b.mul(i, t.i64(c.coutg)))


def _im2col_rows(ctx: Context, t: Fn, node: Node, c: ConvShape, gi: ir.Value, m0: ir.Value,
                 rows: ir.Value) -> None:
    """temp[m, (g, kh, kw, c)] = x[n, ih, iw, g*cg + c] (0 outside the input) for group gi
    and rows m in [m0, m0 + rows). With one group and no horizontal dilation, a kernel row's
    taps are one contiguous run of KW*cin floats in NHWC, copied at once when inside."""
    x = node.inputs[0]
    (H, W), (KH, KW), (SH, SW), (DH, DW), (PH, PW), (OH, OW) = (
        c.size, c.kernel, c.strides, c.dilations, c.pads, c.out)
    g, cg, cin = c.groups, c.cg, c.cin
    row = g * KH * KW * cg
    b = t.b
    xp, tp = ctx.ptr(t, x), ctx.temp(t, node)

    def copy(src: ir.Value, dst: ir.Value, count: int, inside: ir.Value) -> None:
        """Copy `count` floats from element offset `src` of the image, or zero-fill."""
        with t.if_else(inside) as (then, other):
            with then:
                with t.loop(count) as ch:
                    b.store(b.load(t.gep(src_img, b.add(src, ch)), typ=F32), t.gep(dst, ch))
            with other:
                with t.loop(count) as ch:
                    b.store(t.const_f(0.0, F32), t.gep(dst, ch))

    with t.loop(b.add(m0, rows), m0) as mi:
        ow, rest = b.urem(mi, t.i64(OW)), b.udiv(mi, t.i64(OW))
        oh, img = b.urem(rest, t.i64(OH)), b.udiv(rest, t.i64(OH))
        dst_row = t.gep(tp, t.madd((mi, row), (gi, KH * KW * cg)))
        src_img = t.gep(xp, t.madd((img, H * W * cin), (gi, cg)))
        with t.loop(KH) as kh:
            ih = t.madd((oh, SH), (kh, DH), (-PH, 1))
            row_in = in_range(t, ih, 0, H)
            iw0 = t.madd((ow, SW), (-PW, 1))
            dst = t.gep(dst_row, b.mul(kh, t.i64(KW * cg)))
            # An element offset, not a pointer: it is only dereferenced where it is inside.
            src = t.madd((ih, W * cin), (iw0, cin))

            def per_tap() -> None:
                with t.loop(KW) as kw:
                    iw = b.add(iw0, b.mul(kw, t.i64(DW)))
                    inside = b.and_(row_in, in_range(t, iw, 0, W))
                    copy(b.add(src, b.mul(kw, t.i64(DW * cin))), t.gep(dst, b.mul(kw, t.i64(cg))),
                         cg, inside)

            if g == 1 and DW == 1:
                whole = b.and_(row_in, b.and_(b.icmp_signed(">=", iw0, t.i64(0)),
                                              b.icmp_signed("<=", iw0, t.i64(W - KW))))
                with t.if_else(whole) as (then, other):
                    with then:
                        copy(src, dst, KW * cin, whole)
                    with other:
                        per_tap()
            else:
                per_tap()
