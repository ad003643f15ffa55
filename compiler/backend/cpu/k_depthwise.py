"""Depthwise convolution (one input and one output channel per group) on NHWC: per output
pixel, a channel-vectorised sum over the window taps, with the fused epilogue per element."""
from __future__ import annotations

from typing import Callable

import llvmlite.ir as ir
import numpy as np

from ...errors import CompileError
from ...ir.graph import Node
from ...ir.ops_nn import spatial_2d
from ..llvm import program
from ..llvm.emit import F32, Fn
from .context import Context
from .k_elementwise import scalar_const
from .k_gemm_micro import Epilogue
from .k_pool import in_range
from .loops import unravel, vector_blocks


def is_depthwise(node: Node) -> bool:
    g = node.attr("group", 1)
    w = node.inputs[1].type.shape
    return g > 1 and w[0] == g and w[1] == 1


RowAt = Callable[[Fn, ir.Value, ir.Value], ir.Value]  # (task, image, input row) -> row start


def emit_depthwise(ctx: Context, f: Fn, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    _, (H, W), (KH, KW), _, _, _, _, (OH, _) = spatial_2d(node)
    n, c = x.type.shape[0], x.type.shape[-1]

    def row_at(t: Fn, img: ir.Value, ih: ir.Value) -> ir.Value:
        return t.gep(ctx.ptr(t, x), t.madd((img, H * W * c), (ih, W * c)))

    ctx.parallel(f, "depthwise", n * OH, 2 * y.type.numel * KH * KW,
                 lambda t, row: depthwise_row(ctx, t, node, row, row_at))


def depthwise_row(ctx: Context, t: Fn, node: Node, row: ir.Value, row_at: RowAt) -> None:
    """Output row `row` (image-major over N*OH), reading input rows through `row_at`. For each
    block of channels (one vector), the taps' weights stay in registers while the row's pixels
    are computed, each a sum of KH*KW vector FMAs."""
    x, wv, y = node.inputs[0], node.inputs[1], node.outputs[0]
    _, (H, W), (KH, KW), (SH, SW), (DH, DW), (PH, PW), _, (OH, OW) = spatial_2d(node)
    c = x.type.shape[-1]
    taps = np.ascontiguousarray(wv.const.reshape(c, KH * KW).T, np.float32)  # [tap, c]
    epi = Epilogue.of(node, 2)
    # Output columns whose whole window is inside the input horizontally (compile time).
    lo = min(OW, -(-PW // SW))
    hi = max(lo, min(OW, (W - 1 - (KW - 1) * DW + PW) // SW + 1))

    b, vt = t.b, t.vec()
    img, oh = b.udiv(row, t.i64(OH)), b.urem(row, t.i64(OH))
    yp, wp = ctx.ptr(t, y), ctx.weight(t, f"{wv.name}.taps", taps)
    operands = {k: t.gep(ctx.ptr(t, v), epi.operands[k][0])
                for k, v in enumerate(node.inputs[2:]) if scalar_const(v) is None}
    top = t.madd((oh, SH), (-PH, 1))
    rows_inside = b.and_(b.icmp_signed(">=", top, t.i64(0)),
                         b.icmp_signed("<", top, t.i64(H - (KH - 1) * DH)))
    # Per kernel row: is it inside the input, and where it starts (row 0 when outside: any
    # readable address, the loaded values are replaced by zeros).
    ih = [b.add(top, t.i64(kh * DH)) for kh in range(KH)]
    row_ok = [in_range(t, i, 0, H) for i in ih]
    src = [row_at(t, img, b.select(ok, i, t.i64(0))) for i, ok in zip(ih, row_ok)]

    def block(ch0: ir.Value, active: int | None) -> None:
        weights = [t.load_vec(t.gep(wp, t.madd((ch0, 1), (tap * c, 1))), vt, active)
                   for tap in range(KH * KW)]

        def pixels(start: int, stop: int, inside: bool) -> None:
            if stop <= start:
                return
            with t.loop(stop, start) as ow:
                acc = t.const_f(0.0, vt)
                for kh in range(KH):
                    for kw in range(KW):
                        iw = t.madd((ow, SW), (kw * DW - PW, 1))
                        ok = None if inside else b.and_(row_ok[kh], in_range(t, iw, 0, W))
                        iw_ = iw if ok is None else b.select(ok, iw, t.i64(0))
                        v = t.load_vec(t.gep(src[kh], t.madd((iw_, c), (ch0, 1))), vt, active)
                        v = v if ok is None else b.select(ok, v, t.const_f(0.0, vt))
                        acc = t.fmuladd(v, weights[kh * KW + kw], acc)
                pixel = t.madd((row, OW), (ow, 1))
                t.store_vec(fused_epilogue(t, node, epi, operands, pixel, ch0, acc, active),
                            t.gep(yp, t.madd((pixel, c), (ch0, 1))), active)

        with t.if_else(rows_inside) as (then, other):
            with then:
                pixels(0, lo, False)
                pixels(lo, hi, True)
                pixels(hi, OW, False)
            with other:
                pixels(0, OW, False)

    vector_blocks(t, c, block)


def fused_epilogue(t: Fn, node: Node, epi: Epilogue, operands: dict, pixel: ir.Value, ch0: ir.Value,
              acc: ir.Value, active: int | None) -> ir.Value:
    """The node's fused program on one vector of channels of one output pixel."""
    program_ops = node.attrs.get("program", ())
    if not program_ops:
        return acc
    b, vt = t.b, acc.type
    idx = unravel(t, pixel, epi.row_dims)
    row_off = {k: t.madd(*zip(idx, epi.operands[k][1])) for k in operands}

    def load(i: int):
        k = i - 2
        cval = scalar_const(node.inputs[i])
        if cval is not None:
            return t.const_f(cval, vt), "f32"
        col_stride = epi.operands[k][2]
        if col_stride == 0:
            return t.splat(b.load(t.gep(operands[k], row_off[k]), typ=F32), vt), "f32"
        if col_stride != 1:
            raise CompileError(f"{node.name}: fused operand with channel stride {col_stride}")
        return t.load_vec(t.gep(operands[k], b.add(row_off[k], ch0)), vt, active), "f32"

    return program.run(t, program_ops, load, lambda i: scalar_const(node.inputs[i]), (acc, "f32"))[0]
