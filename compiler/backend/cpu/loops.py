"""Strided loop nests over a static shape, split into tasks for the thread pool."""
from __future__ import annotations

from typing import Callable

import numpy as np
import llvmlite.ir as ir

from ..llvm.emit import Fn
from .context import Context

Strides = tuple[int, tuple[int, ...]]  # element offset, per-dimension element strides
INNER_BLOCK = 8192


def contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(s) for s in np.cumprod((1,) + tuple(shape[::-1]))[:-1][::-1]) if shape else ()


def coalesce(shape: tuple[int, ...], operands: list[Strides]) -> tuple[tuple[int, ...], list[Strides]]:
    """Drop unit dimensions and merge neighbours every operand walks contiguously."""
    dims = [d for d in range(len(shape)) if shape[d] != 1]
    out_shape: list[int] = []
    out_strides: list[list[int]] = [[] for _ in operands]
    for d in dims:
        if out_shape and all(st[-1] == op[1][d] * shape[d] for st, op in zip(out_strides, operands)):
            out_shape[-1] *= shape[d]
            for st, op in zip(out_strides, operands):
                st[-1] = op[1][d]
            continue
        out_shape.append(shape[d])
        for st, op in zip(out_strides, operands):
            st.append(op[1][d])
    if not out_shape:
        return (1,), [(op[0], (0,)) for op in operands]
    return tuple(out_shape), [(op[0], tuple(st)) for op, st in zip(operands, out_strides)]


def unravel(f: Fn, flat: ir.Value, shape: tuple[int, ...]) -> list[ir.Value]:
    idx = []
    for d in reversed(shape):
        idx.append(f.b.urem(flat, f.i64(d)) if d > 1 else f.i64(0))
        flat = f.b.udiv(flat, f.i64(d)) if d > 1 else flat
    return idx[::-1]


def nest(ctx: Context, f: Fn, hint: str, shape: tuple[int, ...], operands: list[Strides],
         flops_per_element: int, body: Callable[[Fn, list[ir.Value]], None]) -> None:
    """Calls body(fn, element offsets of each operand) for every index of `shape`."""
    if 0 in shape:
        return
    shape, operands = coalesce(shape, operands)
    inner, outer = shape[-1], shape[:-1]
    block = min(inner, INNER_BLOCK)
    blocks = -(-inner // block)
    n_tasks = int(np.prod(outer, dtype=np.int64)) * blocks
    flops = n_tasks * block * max(flops_per_element, 1)

    def task(t: Fn, flat: ir.Value) -> None:
        blk = t.b.urem(flat, t.i64(blocks)) if blocks > 1 else t.i64(0)
        idx = unravel(t, t.b.udiv(flat, t.i64(blocks)) if blocks > 1 else flat, outer)
        j0 = t.b.mul(blk, t.i64(block))
        bases = [t.madd((off, 1), *[(i, s) for i, s in zip(idx, st[:-1])], (j0, st[-1]))
                 for off, st in operands]
        count = t.i64(block)
        if inner % block:
            rest = t.b.sub(t.i64(inner), j0)
            count = t.b.select(t.b.icmp_signed("<", rest, count), rest, count)
        with t.loop(count) as j:
            body(t, [t.b.add(base, t.b.mul(j, t.i64(st[-1]))) if st[-1] else base
                     for base, (_, st) in zip(bases, operands)])

    ctx.parallel(f, hint, n_tasks, flops, task)


def serial_nest(f: Fn, shape: tuple[int, ...], operands: list[Strides],
                body: Callable[[list[ir.Value]], None]) -> None:
    """Plain nested loops (no task split); body gets each operand's element offset."""
    shape, operands = coalesce(shape, operands)

    def level(d: int, bases: list[ir.Value]) -> None:
        if d == len(shape):
            body(bases)
            return
        with f.loop(shape[d]) as i:
            level(d + 1, [f.b.add(b, f.b.mul(i, f.i64(st[d]))) if st[d] else b
                          for b, (_, st) in zip(bases, operands)])

    level(0, [f.i64(off) if isinstance(off, int) else off for off, _ in operands])


def vector_blocks(f: Fn, count: int, body: Callable[[ir.Value, int | None], None]) -> None:
    """body(first, active) over [0, count) in vectors of f's width: a loop of full vectors,
    then the tail vector with its `active` lanes (None for a full one)."""
    vw = f.variant.vector_width
    full, tail = divmod(count, vw)
    if full:
        with f.loop(full) as i:
            body(f.b.mul(i, f.i64(vw)), None)
    if tail:
        body(f.i64(full * vw), tail)
