"""Tiled GEMM with shared-memory (LDS) tiles and a fused epilogue: MatMul (batched, broadcast)
and convolution as implicit GEMM (the input patch matrix is gathered while loading tiles,
never built). A block computes a BM x BN tile of C, each thread a TM x TN register tile."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import CompileError
from ...ir.graph import Node
from ...ir.ops_nn import spatial_2d
from .kbase import BID, TID, Builder, dot, strides, unravel
from .kir import (Apply, Barrier, Const, Expr, For, If, Kernel, Load, Local, Shared, Store, Sym, ceil_div)

BK, BN, TN, THREADS = 16, 64, 4, 256
AtFn = Callable[[Expr, Expr, Expr], tuple[Expr | None, Expr]]  # (batch, row, col) -> (valid, value)


@dataclass(frozen=True)
class Gemm:
    m: int
    n: int
    k: int
    batches: int

    @property
    def tile_m(self) -> tuple[int, int]:
        """(BM, TM): short matrices (a few rows) get a 16-row tile instead of wasting 60 rows."""
        return (16, 1) if self.m <= 16 else (64, 4)


def tiled_gemm(b: Builder, node: Node, kind: str, g: Gemm, a_at: AtFn, b_at: AtFn,
               store: Callable[[Expr, Expr, Expr, Expr], list]) -> Kernel:
    bm, tm = g.tile_m
    cols = BN // TN
    tiles_m, tiles_n = ceil_div(g.m, bm), ceil_div(g.n, BN)
    batch, rest = BID // (tiles_m * tiles_n), BID % (tiles_m * tiles_n)
    m0, n0 = rest // tiles_n * bm, rest % tiles_n * BN
    ty, tx = TID // cols, TID % cols
    a_sh, b_sh = Shared("a", "f32", BK * bm), Shared("b", "f32", BK * BN)
    acc, ar, br = Local("acc", "f32", tm * TN), Local("ar", "f32", tm), Local("br", "f32", TN)
    kt = Sym("kt") * BK

    def fill(sh: Shared, rows: int, cols_: int, at: AtFn, row_major_a: bool) -> list:
        out = []
        for e in range(rows * cols_ // THREADS):
            li = TID + e * THREADS
            if row_major_a:   # A tile: consecutive threads walk k (contiguous in A's rows)
                r, c = li // BK, li % BK
                valid, value = at(batch, m0 + r, kt + c)
                ok, dst = (m0 + r < g.m) & (kt + c < g.k), c * bm + r
            else:             # B tile: consecutive threads walk n
                r, c = li // BN, li % BN
                valid, value = at(batch, kt + r, n0 + c)
                ok, dst = (kt + r < g.k) & (n0 + c < g.n), r * BN + c
            out.append(If(ok if valid is None else ok & valid, (Store(sh, dst, value),), (Store(sh, dst, Const(0.0, "f32")),)))
        return out

    c = lambda i, j: Const(i * TN + j)  # noqa: E731
    compute = For("kk", BK, (
        *[Store(ar, Const(i), Load(a_sh, Sym("kk") * bm + ty * tm + i)) for i in range(tm)],
        *[Store(br, Const(j), Load(b_sh, Sym("kk") * BN + tx * TN + j)) for j in range(TN)],
        *[Store(acc, c(i, j), Load(acc, c(i, j)) + Load(ar, Const(i)) * Load(br, Const(j)))
          for i in range(tm) for j in range(TN)]))
    body = [*[Store(acc, Const(i), Const(0.0, "f32")) for i in range(tm * TN)],
            For("kt", ceil_div(g.k, BK), (*fill(a_sh, bm, BK, a_at, True), *fill(b_sh, BK, BN, b_at, False),
                                           Barrier(), compute, Barrier()))]
    for i in range(tm):
        for j in range(TN):
            m, n = m0 + ty * tm + i, n0 + tx * TN + j
            body.append(If((m < g.m) & (n < g.n), tuple(store(batch, m, n, Load(acc, c(i, j))))))
    return Kernel(b.name(node, kind), kind, g.batches * tiles_m * tiles_n, THREADS, tuple(body),
                  (a_sh, b_sh), (acc, ar, br), (node.name,))


def epilogue(b: Builder, node: Node, n_args: int, out_idx: list[Expr], acc: Expr) -> Expr:
    """The node's fused program (bias, activation, residual add ...) applied to the accumulator."""
    program = node.attr("program", ())
    if not program:
        return acc
    operands: list = [None] * n_args
    for v, view in zip(node.inputs[n_args:], node.attrs["views"]):
        offset, st = view.strides(v.type.shape)
        operands.append(Load(b.plan.buf(v), dot(out_idx, st, offset)))
    return Apply(program, tuple(operands), "f32", acc)


def _batch_offset(batch: Expr, out_batch: tuple[int, ...], shape: tuple[int, ...], size: int) -> Expr:
    lead = len(out_batch) - len(shape)
    st = strides(shape)
    coeffs = [0 if d < lead or shape[d - lead] == 1 else st[d - lead] * size for d in range(len(out_batch))]
    return dot(unravel(batch, out_batch), coeffs)


def matmul(b: Builder, node: Node) -> list[Kernel]:
    a, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    *batch, m, n = y.type.shape
    k = a.type.shape[-1]
    batch = tuple(batch)
    g = Gemm(m, n, k, int(np.prod(batch, dtype=np.int64)))
    abuf, wbuf, ybuf = b.plan.buf(a), b.plan.buf(w), b.plan.buf(y)
    a_at = lambda bt, r, c: (None, Load(abuf, _batch_offset(bt, batch, a.type.shape[:-2], m * k) + r * k + c))  # noqa: E731
    b_at = lambda bt, r, c: (None, Load(wbuf, _batch_offset(bt, batch, w.type.shape[:-2], k * n) + r * n + c))  # noqa: E731

    def store(bt, r, c, acc):
        idx = unravel(bt, batch) + [r, c]
        return [Store(ybuf, (bt * m + r) * n + c, epilogue(b, node, 2, idx, acc))]

    return [tiled_gemm(b, node, "gemm", g, a_at, b_at, store)]


def conv(b: Builder, node: Node) -> list[Kernel]:
    x, wv, y = node.inputs[0], node.inputs[1], node.outputs[0]
    if wv.const is None:
        raise CompileError(f"Conv node {node.name}: GPU backends need build-time weights")
    _, (H, W), (KH, KW), (SH, SW), (DH, DW), (PH, PW), _, (OH, OW) = spatial_2d(node)
    groups = node.attr("group", 1)
    cout, cg = wv.type.shape[0], wv.type.shape[1]
    coutg, cin, nimg = cout // groups, x.type.shape[-1], x.type.shape[0]
    # [g][kh][kw][c][co]: row k = (kh*KW + kw)*cg + c of each group's B matrix
    w = wv.const.reshape(groups, coutg, cg, KH, KW).transpose(0, 3, 4, 2, 1)
    wbuf = b.plan.weight(f"{wv.name}.gemm", np.ascontiguousarray(w, np.float32))
    xbuf, ybuf = b.plan.buf(x), b.plan.buf(y)
    g = Gemm(nimg * OH * OW, coutg, KH * KW * cg, groups)

    def a_at(grp, r, c):
        img, oh, ow = unravel(r, (nimg, OH, OW))
        tap, ch = c // cg, c % cg
        ih, iw = oh * SH + (tap // KW) * DH - PH, ow * SW + (tap % KW) * DW - PW
        valid = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        return valid, Load(xbuf, ((img * H + ih) * W + iw) * cin + grp * cg + ch)

    b_at = lambda grp, r, c: (None, Load(wbuf, (grp * g.k + r) * coutg + c))  # noqa: E731

    def store(grp, r, c, acc):
        ch = grp * coutg + c
        idx = unravel(r, y.type.shape[:-1]) + [ch]
        return [Store(ybuf, r * cout + ch, epilogue(b, node, 2, idx, acc))]

    return [tiled_gemm(b, node, "conv", g, a_at, b_at, store)]
