"""The blocked GEMM driver over the micro-kernel, and MatMul on it. Constant B operands
(weights) are pre-packed at compile time into 64-column panels."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import llvmlite.ir as ir
import numpy as np

from ...ir.graph import Node
from ..llvm.emit import I1, Fn
from .context import Context
from .k_gemm_micro import MR, Epilogue, micro_kernel, pack_b
from .loops import contiguous, unravel

NR, KC = 64, 256
# A panel calls its micro-kernels once per K block and column tile. Inlined at more places than
# this, a deep layer's kernel grows to thousands of lines and takes LLVM tens of seconds to
# compile, while a call per MR x KC x cols tile costs nothing measurable at run time.
INLINE_MAX_CALLS = 8
B_CACHE_BYTES = 512 * 1024  # B operands larger than this come from L3 or memory
PtrAt = Callable[[Fn, ir.Value], ir.Value]  # (task fn, batch index) -> pointer


def gemm(ctx: Context, f: Fn, epi: Epilogue, m: int, n: int, k: int, batches: int,
         a_at: PtrAt, lda: int, b_at: PtrAt, packed: bool, c_at: PtrAt, ldc: int,
         row0_at: PtrAt, col0_at: PtrAt, taps: tuple[tuple[int, int], ...] = ()) -> None:
    """C[b] (m x n) = A[b] (m x k, row stride lda) B[b] (k x n) for b in [0, batches).

    Tasks own (batch, block of rows, panel of 64 columns); inside, K is blocked by KC so a
    B sub-panel stays in cache across the row tiles. row0_at/col0_at give a batch's first
    output row and column for the epilogue. With `taps` (see micro_kernel) k is per tap."""
    panels = -(-n // NR)
    tiles = -(-m // MR)
    flops = 2 * batches * m * n * k * max(len(taps), 1)
    # Enough tasks to spread over a pool, but every extra block of rows re-reads its panel
    # of B: split rows only while there are few tasks, and less so when B is large.
    b_bytes = 4 * k * max(len(taps), 1) * n * (batches if not packed else 1)
    want = max(1, min(16 if b_bytes <= B_CACHE_BYTES else 8, flops // 1_000_000))
    mblocks = max(1, min(tiles, -(-want // (batches * panels))))
    mb = -(-tiles // mblocks) * MR
    mblocks = -(-m // mb)
    # A large packed B streams from memory: fetch the next K block while this one is in use.
    prefetch = KC * NR if packed and not taps and b_bytes > B_CACHE_BYTES else 0
    last_width = n - (panels - 1) * NR
    # Row blocks vary fastest, so a thread's run of tasks shares one panel of B, unless the
    # last panel is narrower: then threads' runs of whole panels would differ in work.
    rows_fastest = last_width == NR or mblocks == 1

    def task(t: Fn, flat: ir.Value) -> None:
        bt = t.b
        inner, outer = (mblocks, panels) if rows_fastest else (panels, mblocks)
        first, rest = bt.urem(flat, t.i64(inner)), bt.udiv(flat, t.i64(inner))
        second, batch = bt.urem(rest, t.i64(outer)), bt.udiv(rest, t.i64(outer))
        blk, p = (first, second) if rows_fastest else (second, first)
        m0 = bt.mul(blk, t.i64(mb))
        rows = bt.sub(t.i64(m), m0)
        rows = bt.select(bt.icmp_signed("<", rows, t.i64(mb)), rows, t.i64(mb))
        a = t.gep(a_at(t, batch), bt.mul(m0, t.i64(lda)))
        c = t.gep(c_at(t, batch), bt.mul(m0, t.i64(ldc)))
        tail = None
        if m % MR:
            tail = (m % MR, t.i64((m - (mblocks - 1) * mb) // MR),
                    bt.icmp_signed("==", blk, t.i64(mblocks - 1)))
        block = RowBlock(a, lda, c, ldc, bt.udiv(rows, t.i64(MR)), tail,
                         bt.add(row0_at(t, batch), m0), col0_at(t, batch))
        panel = functools.partial(_panel, ctx, t, epi, k, n, packed, taps, prefetch, b_at(t, batch), p, block)
        if last_width == NR:
            panel(NR)
        else:
            with t.if_else(bt.icmp_signed("==", p, t.i64(panels - 1))) as (then, other):
                with then:
                    panel(last_width)
                with other:
                    panel(NR)

    # A large B (a GEMV's weights) streams from L3 at about a byte per two flops' time.
    ctx.parallel(f, "gemm", batches * mblocks * panels, max(flops, 2 * b_bytes), task)


@dataclass(frozen=True)
class RowBlock:
    """Rows of A and C one task computes: `tiles` full MR-row tiles, then the `tail`
    (rows, tile index, condition or None) of fewer rows; row0/col0 feed the epilogue."""
    a: ir.Value
    lda: int
    c: ir.Value
    ldc: int
    tiles: ir.Value
    tail: tuple[int, ir.Value, ir.Value | None] | None
    row0: ir.Value
    col0: ir.Value


def _panel(ctx: Context, t: Fn, epi: Epilogue, k: int, n: int, packed: bool,
           taps: tuple[tuple[int, int], ...], prefetch: int, b: ir.Value, p: ir.Value,
           rows: RowBlock, width: int) -> None:
    """Panel p (`width` <= NR columns) of C for a block of rows, K blocked by KC."""
    bt, tw = t.b, ctx.variant.vector_width * ctx.variant.tile_vectors
    ldb = -(-width // 16) * 16 if packed else n
    bp = t.gep(b, bt.mul(p, t.i64(k * max(len(taps), 1) * NR if packed else NR)))
    c = t.gep(rows.c, bt.mul(p, t.i64(NR)))
    col = bt.add(rows.col0, bt.mul(p, t.i64(NR)))
    k_steps = range(0, k, KC if not taps else k)
    inline = len(k_steps) * -(-width // tw) <= INLINE_MAX_CALLS
    for k0 in k_steps:
        kb = min(KC, k - k0) if not taps else k
        flags = [ir.Constant(I1, k0 == 0), ir.Constant(I1, k0 + kb == k)]
        for s0 in range(0, width, tw):
            cols = min(tw, width - s0)
            masked = not packed and cols % ctx.variant.vector_width != 0

            def call(mr: int, i: ir.Value) -> None:
                fn = micro_kernel(ctx, epi, mr, cols, masked,
                                  tuple((a, b * ldb) for a, b in taps) or ((0, 0),), prefetch, inline)
                r = bt.mul(i, t.i64(MR))
                bt.call(fn, [t.args[0], t.gep(rows.a, t.madd((r, rows.lda), (k0, 1))), t.i64(rows.lda),
                             t.gep(bp, k0 * ldb + s0), t.i64(ldb),
                             t.gep(c, t.madd((r, rows.ldc), (s0, 1))), t.i64(rows.ldc), t.i64(kb),
                             *flags, bt.add(rows.row0, r), bt.add(col, t.i64(s0))])

            with t.loop(rows.tiles) as i:
                call(MR, i)
            if rows.tail is not None:
                tail_rows, index, cond = rows.tail
                if cond is None:
                    call(tail_rows, index)
                else:
                    with t.if_then(cond):
                        call(tail_rows, index)


def gemm_rows(ctx: Context, t: Fn, epi: Epilogue, m: int, n: int, k: int, a: ir.Value,
              b: ir.Value, c: ir.Value, row0: ir.Value) -> None:
    """C (m x n, row stride n) = A (m x k, row stride k) B (packed) inline in task `t`, one
    thread: for a kernel that needs a few rows of a product at a time."""
    block = RowBlock(a, k, c, n, t.i64(m // MR), (m % MR, t.i64(m // MR), None) if m % MR else None,
                     row0, t.i64(0))
    full, last = n // NR, n % NR
    with t.loop(full) as p:
        _panel(ctx, t, epi, k, n, True, (), 0, b, p, block, NR)
    if last:
        _panel(ctx, t, epi, k, n, True, (), 0, b, t.i64(full), block, last)


def _batch_offsets(t: Fn, batch: ir.Value, dims: tuple[int, ...], strides: tuple[int, ...]
                   ) -> ir.Value:
    return t.madd(*zip(unravel(t, batch, dims), strides)) if dims else t.i64(0)


def _broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a batch shape broadcast against `out` (0 where broadcast)."""
    full = (1,) * (len(out) - len(shape)) + tuple(shape)
    return tuple(0 if d == 1 else s for d, s in zip(full, contiguous(full)))


def emit_matmul(ctx: Context, f: Fn, node: Node) -> None:
    a, bv, y = node.inputs[0], node.inputs[1], node.outputs[0]
    epi = Epilogue.of(node, 2)
    *batch, m, n = y.type.shape
    k = a.type.shape[-1]
    batch = tuple(batch)
    nb = int(np.prod(batch, dtype=np.int64))
    a_batch = _broadcast_strides(a.type.shape[:-2], batch)
    packed = bv.const is not None
    b_is_shared = bv.type.numel == k * n
    if packed and b_is_shared and a.type.shape[:-2] == batch:
        # Fold the batch into M: one weight matrix for all rows.
        m, nb, batch = m * nb, 1, ()
        a_batch = ()
    b_batch = _broadcast_strides(bv.type.shape[:-2], batch)
    if packed:
        w = bv.const.reshape(-1, k, n)
        data = ctx.derived(f"{bv.name}.packed", lambda: np.concatenate([pack_b(wi, NR) for wi in w]))
        psize = data.size // len(w)

    def a_at(t: Fn, i: ir.Value) -> ir.Value:
        return t.gep(ctx.ptr(t, a), t.b.mul(_batch_offsets(t, i, batch, a_batch), t.i64(m * k)))

    def b_at(t: Fn, i: ir.Value) -> ir.Value:
        base = ctx.weight(t, f"{bv.name}.packed", data) if packed else ctx.ptr(t, bv)
        off = _batch_offsets(t, i, batch, b_batch)
        return t.gep(base, t.b.mul(off, t.i64(psize if packed else k * n)))

    def c_at(t: Fn, i: ir.Value) -> ir.Value:
        return t.gep(ctx.ptr(t, y), t.b.mul(i, t.i64(m * n)))

    gemm(ctx, f, epi, m, n, k, nb, a_at, k, b_at, packed, c_at, n,
         lambda t, i: t.b.mul(i, t.i64(m)), lambda t, i: t.i64(0))
