"""Depthwise convolution (one input and one output channel per group) on NHWC: per output
pixel, a channel-vectorised sum over the window taps, with the fused epilogue per element."""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from ...ir.graph import Node
from . import program
from .context import Context
from .emit import F32, Fn
from .k_elementwise import scalar_const
from .k_gemm_micro import Epilogue
from .k_pool import in_range, spatial_2d
from .loops import unravel


def is_depthwise(node: Node) -> bool:
    g = node.attr("group", 1)
    w = node.inputs[1].type.shape
    return g > 1 and w[0] == g and w[1] == 1


def emit_depthwise(ctx: Context, f: Fn, node: Node) -> None:
    x, wv, y = node.inputs[0], node.inputs[1], node.outputs[0]
    _, (H, W), (KH, KW), (SH, SW), (DH, DW), (PH, PW), _, (OH, OW) = spatial_2d(node)
    n, c = x.type.shape[0], x.type.shape[-1]
    taps = np.ascontiguousarray(wv.const.reshape(c, KH * KW).T, np.float32)  # [tap, c]
    epi = Epilogue.of(node, 2)

    # Output columns whose whole window is inside the input horizontally (compile time).
    lo = min(OW, -(-PW // SW))
    hi = max(lo, min(OW, (W - 1 - (KW - 1) * DW + PW) // SW + 1))

    def task(t: Fn, row: ir.Value) -> None:
        b = t.b
        img, oh = b.udiv(row, t.i64(OH)), b.urem(row, t.i64(OH))
        xp, yp = ctx.ptr(t, x), ctx.ptr(t, y)
        wp = ctx.weight(t, f"{wv.name}.taps", taps)
        operands = {k: t.gep(ctx.ptr(t, v), epi.operands[k][0])
                    for k, v in enumerate(node.inputs[2:]) if scalar_const(v) is None}
        top = t.madd((oh, SH), (-PH, 1))
        rows_inside = b.and_(b.icmp_signed(">=", top, t.i64(0)),
                             b.icmp_signed("<", top, t.i64(H - (KH - 1) * DH)))

        def pixels(start: int, stop: int, inside: bool) -> None:
            if stop <= start:
                return
            with t.loop(stop, start) as ow:
                srcs = []
                for kh in range(KH):
                    ih = b.add(top, t.i64(kh * DH))
                    for kw in range(KW):
                        iw = t.madd((ow, SW), (kw * DW - PW, 1))
                        if inside:
                            srcs.append((None, t.gep(xp, t.madd((img, H * W * c), (ih, W * c), (iw, c)))))
                            continue
                        ok = b.and_(in_range(t, ih, 0, H), in_range(t, iw, 0, W))
                        # Out-of-range taps read a valid address and are zeroed by a select,
                        # so the channel loop has no branches and vectorises.
                        ihc, iwc = b.select(ok, ih, t.i64(0)), b.select(ok, iw, t.i64(0))
                        srcs.append((ok, t.gep(xp, t.madd((img, H * W * c), (ihc, W * c), (iwc, c)))))
                channels(t.madd((row, OW), (ow, 1)), srcs)

        def channels(pixel: ir.Value, srcs: list) -> None:
            idx = unravel(t, pixel, epi.row_dims)
            row_off = {k: t.madd(*zip(idx, epi.operands[k][1])) for k in operands}
            out = t.gep(yp, b.mul(pixel, t.i64(c)))
            with t.loop(c) as ch:
                acc = t.const_f(0.0, F32)
                for tap, (ok, src) in enumerate(srcs):
                    v = b.load(t.gep(src, ch), typ=F32)
                    v = v if ok is None else b.select(ok, v, t.const_f(0.0, F32))
                    acc = t.fmuladd(v, b.load(t.gep(wp, t.madd((ch, 1), (tap * c, 1))), typ=F32), acc)

                def load(i: int, ch=ch):
                    k = i - 2
                    cval = scalar_const(node.inputs[i])
                    if cval is not None:
                        return t.const_f(cval, F32), "f32"
                    off = t.madd((row_off[k], 1), (ch, epi.operands[k][2]))
                    return b.load(t.gep(operands[k], off), typ=F32), "f32"

                val, _ = program.run(t, node.attrs.get("program", ()), load,
                                     lambda i: scalar_const(node.inputs[i]), (acc, "f32"))
                b.store(val, t.gep(out, ch))

        with t.if_else(rows_inside) as (then, other):
            with then:
                pixels(0, lo, False)
                pixels(lo, hi, True)
                pixels(hi, OW, False)
            with other:
                pixels(0, OW, False)

    ctx.parallel(f, "depthwise", n * OH, 2 * y.type.numel * KH * KW, task)
