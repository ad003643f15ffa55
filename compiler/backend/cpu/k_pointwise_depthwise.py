"""A 1x1 conv feeding a depthwise conv (MobileNet's expand + depthwise) as one kernel: the
1x1 conv's output rows are computed into a ring of KH rows on the stack, where the depthwise
conv reads them, so the wide intermediate tensor is never written to memory."""
from __future__ import annotations

import llvmlite.ir as ir

from ...ir.graph import Graph, Node
from ...ir.ops_nn import spatial_2d
from ..llvm.emit import F32, I64, Fn
from .context import Context
from .k_conv import ConvShape
from .k_depthwise import depthwise_row, is_depthwise
from .k_gemm import NR, gemm_rows
from .k_gemm_micro import Epilogue, pack_b

# An intermediate that fits a core's L2 stays there between two separate kernels anyway, and
# fusing would only add the rows recomputed where threads' shares of output rows meet.
MIN_INTERMEDIATE_BYTES = 1024 * 1024
MAX_RING_BYTES = 512 * 1024  # the ring lives on a pool thread's stack


def pair_pointwise_depthwise(graph: Graph) -> list[Node]:
    """graph.nodes, with each fusable (1x1 conv, depthwise conv) pair as one PointwiseDepthwise
    node at the depthwise conv's place. The graph itself is not changed."""
    uses = graph.consumers()
    pairs = {}
    for dw in graph.nodes:
        pw = _fusable_pointwise(graph, dw, uses)
        if pw is not None:
            pairs[pw] = dw
    fused = {dw: _fused_node(pw, dw) for pw, dw in pairs.items()}
    return [fused.get(n, n) for n in graph.nodes if n not in pairs]


def _fusable_pointwise(graph: Graph, dw: Node, uses: dict) -> Node | None:
    if dw.op != "Conv" or dw.attr("layout") != "NHWC" or dw.inputs[1].const is None or not is_depthwise(dw):
        return None
    v = dw.inputs[0]
    pw = v.producer
    if (v.type.rank != 4 or pw is None or pw.op != "Conv" or pw.attr("layout") != "NHWC" or pw.inputs[1].const is None
            or is_depthwise(pw) or v in graph.outputs or uses.get(v) != [dw]):
        return None
    c = ConvShape.of(pw)
    _, (H, W), (KH, _), (SH, _), dilations, _, _, _ = spatial_2d(dw)
    if c.route != "direct" or c.groups != 1 or dilations != (1, 1) or SH > KH:
        return None
    row_bytes = W * c.coutg * 4
    if H * row_bytes < MIN_INTERMEDIATE_BYTES or KH * row_bytes > MAX_RING_BYTES:
        return None
    return pw


def _fused_node(pw: Node, dw: Node) -> Node:
    outputs = list(dw.outputs)
    node = Node("PointwiseDepthwise", dw.name, pw.inputs + dw.inputs[1:], outputs,
                {"pointwise": pw, "depthwise": dw})
    for v in outputs:  # the graph keeps its own producers: this node is only for emission
        v.producer = dw
    return node


def emit_pointwise_depthwise(ctx: Context, f: Fn, node: Node) -> None:
    """Each thread walks its share of output rows in order; an output row first computes the
    input rows of its window that are not in the ring yet (with the 1x1 conv's epilogue),
    then the depthwise row from the ring."""
    pw, dw = node.attrs["pointwise"], node.attrs["depthwise"]
    x, wv = pw.inputs[0], pw.inputs[1]
    n, H, W, cin = x.type.shape
    ce = pw.outputs[0].type.shape[-1]
    _, _, (KH, KW), (SH, _), _, (PH, _), _, (OH, OW) = spatial_2d(dw)
    packed = ctx.derived(f"{wv.name}.packed", lambda: pack_b(wv.const.reshape(ce, cin).T, NR))
    epi = Epilogue.of(pw, 2)
    row = W * ce

    def ring_row(t: Fn, ring: ir.Value, g: ir.Value) -> ir.Value:
        """Input row g (over N*H) sits in ring slot g mod KH: a window's KH rows never collide."""
        return t.gep(ring, t.b.mul(t.b.urem(g, t.i64(KH)), t.i64(row)))

    def chunk(t: Fn, begin: ir.Value, end: ir.Value) -> None:
        b = t.b
        ring = t.pro.alloca(F32, size=t.i64(KH * row))
        ring.align = 64
        computed = t.pro.alloca(I64)  # input rows below this (over N*H) are done
        b.store(t.i64(0), computed)
        xp, wp = ctx.ptr(t, x), ctx.weight(t, f"{wv.name}.packed", packed)
        with t.loop(end, begin) as r:
            img, oh = b.udiv(r, t.i64(OH)), b.urem(r, t.i64(OH))
            top, base = t.madd((oh, SH), (-PH, 1)), b.mul(img, t.i64(H))
            lo = b.add(base, smax(t, top, t.i64(0)))
            hi = b.add(base, smin(t, b.add(top, t.i64(KH)), t.i64(H)))
            start = smax(t, b.load(computed, typ=I64), lo)
            with t.loop(hi, start) as g:
                gemm_rows(ctx, t, epi, W, ce, cin, t.gep(xp, b.mul(g, t.i64(W * cin))), wp,
                          ring_row(t, ring, g), b.mul(g, t.i64(W)))
            b.store(smax(t, start, hi), computed)
            depthwise_row(ctx, t, dw, r, lambda t, img, ih: ring_row(t, ring, t.madd((img, H), (ih, 1))))

    work = 2 * n * H * W * cin * ce + 2 * n * OH * OW * ce * KH * KW
    ctx.parallel_chunks(f, "pointwise_depthwise", n * OH, work, chunk)


def smax(t: Fn, a: ir.Value, b: ir.Value) -> ir.Value:
    return t.b.select(t.b.icmp_signed(">", a, b), a, b)


def smin(t: Fn, a: ir.Value, b: ir.Value) -> ir.Value:
    return t.b.select(t.b.icmp_signed("<", a, b), a, b)
