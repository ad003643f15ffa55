"""MaxPool / AveragePool on channels-last tensors: per output pixel, the channel vector is
accumulated over the window taps that fall inside the input."""
from __future__ import annotations

import llvmlite.ir as ir

from ...errors import CompileError
from ...ir.graph import Node
from ...ir.ops_nn import spatial_2d
from ..llvm import mathfn
from ..llvm.emit import F32, I64, Fn
from .context import Context
from .loops import vector_blocks


def in_range(f: Fn, i: ir.Value, lo: int, hi: int) -> ir.Value:
    return f.b.and_(f.b.icmp_signed(">=", i, f.i64(lo)), f.b.icmp_signed("<", i, f.i64(hi)))


def emit_pool(ctx: Context, f: Fn, node: Node) -> None:
    if node.attr("layout") != "NHWC":
        raise CompileError(f"{node.op} node {node.name}: only 1-D and 2-D pooling is supported")
    x, y = node.inputs[0], node.outputs[0]
    _, (H, W), (KH, KW), (SH, SW), (DH, DW), (PH, PW), (EH, EW), (OH, OW) = spatial_2d(node)
    n, c = x.type.shape[0], x.type.shape[-1]
    is_max = node.op == "MaxPool"
    include_pad = bool(node.attr("count_include_pad", 0))

    def task(t: Fn, row: ir.Value) -> None:
        b, vt = t.b, t.vec()
        img, oh = b.udiv(row, t.i64(OH)), b.urem(row, t.i64(OH))
        xp, yp = ctx.ptr(t, x), ctx.ptr(t, y)
        acc, count = t.pro.alloca(vt), t.pro.alloca(I64)
        with t.loop(OW) as ow:
            out = t.gep(yp, t.madd((row, OW * c), (ow, c)))

            def block(ch0: ir.Value, active: int | None) -> None:
                """One vector of channels, accumulated in a register over the taps inside."""
                b.store(t.const_f(float("-inf") if is_max else 0.0, vt), acc)
                b.store(t.i64(0), count)
                with t.loop(KH) as kh:
                    ih = t.madd((oh, SH), (kh, DH), (-PH, 1))
                    with t.loop(KW) as kw:
                        iw = t.madd((ow, SW), (kw, DW), (-PW, 1))
                        inside = b.and_(in_range(t, ih, 0, H), in_range(t, iw, 0, W))
                        counted = inside if not include_pad else b.and_(
                            in_range(t, ih, -PH, H + EH), in_range(t, iw, -PW, W + EW))
                        b.store(b.add(b.load(count, typ=I64), b.zext(counted, I64)), count)
                        with t.if_then(inside):
                            at = t.madd((img, H * W * c), (ih, W * c), (iw, c), (ch0, 1))
                            v, a = t.load_vec(t.gep(xp, at), vt, active), b.load(acc, typ=vt)
                            b.store(mathfn.fmax(t, a, v) if is_max else b.fadd(a, v), acc)
                result = b.load(acc, typ=vt)
                if not is_max:
                    inv = b.fdiv(t.const_f(1.0, F32), b.sitofp(b.load(count, typ=I64), F32))
                    result = b.fmul(result, t.splat(inv, vt))
                t.store_vec(result, t.gep(out, ch0), active)

            vector_blocks(t, c, block)

    ctx.parallel(f, "pool", n * OH, y.type.numel * KH * KW, task)
