"""Helpers the kernel builders share: index arithmetic, one-thread-per-element kernels, block
reductions (warp shuffles, then one value per warp through shared memory)."""
from __future__ import annotations

from typing import Callable, Sequence

from ...ir.fused import Instr
from ...ir.graph import Node
from .kir import (Apply, Barrier, Bin, Const, Expr, For, If, Kernel, Let, Load, Local, Shared, Store,
                  Sym, WARP, WarpReduce, ceil_div)
from .plan import BufferPlan

ELEMENT_BLOCK = 256
ROW_BLOCK = 128
TID, BID = Sym("tid"), Sym("bid")


class Builder:
    """Names kernels uniquely and gives access to the buffer plan."""

    def __init__(self, plan: BufferPlan) -> None:
        self.plan, self.count = plan, 0

    def name(self, node: Node, kind: str) -> str:
        self.count += 1
        safe = "".join(c if c.isalnum() else "_" for c in node.name)[:40]
        return f"k{self.count}_{kind}_{safe}"


def strides(shape: Sequence[int]) -> list[int]:
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return out[::-1]


def unravel(flat: Expr, shape: Sequence[int]) -> list[Expr]:
    """Multi-index of a row-major flat index (dimensions of extent 1 are constant 0)."""
    idx = []
    for d, s in zip(shape, strides(shape)):
        if d == 1:
            idx.append(Const(0))
            continue
        q = flat // s if s > 1 else flat
        idx.append(q % d if s * d < _extent(shape) else q)
    return idx


def _extent(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def dot(idx: Sequence[Expr], coeffs: Sequence[int], start: int = 0) -> Expr:
    acc: Expr = Const(start)
    for i, c in zip(idx, coeffs):
        if c:
            acc = acc + (i * c if c != 1 else i)
    return acc


def unary(op: str, x: Expr) -> Expr:
    return Apply((Instr(op, (("in", 0),)),), (x,), "f32")


def per_element(b: Builder, node: Node, kind: str, n: int, body: Callable[[Expr], list]) -> Kernel:
    """One thread per element of [0, n): body(i) gives the statements for element i."""
    i = Sym("i")
    return Kernel(b.name(node, kind), kind, ceil_div(n, ELEMENT_BLOCK), ELEMENT_BLOCK,
                  (Let("i", BID * ELEMENT_BLOCK + TID), If(i < n, tuple(body(i)))), nodes=(node.name,))


def block_reduce(op: str, red: Local, sh: Shared, block: int) -> list:
    """red[0] of every thread := op over the whole block's red[0]."""
    warps = block // WARP
    total = Load(sh, Const(0))
    for w in range(1, warps):
        total = Bin(op, total, Load(sh, Const(w)))
    return [WarpReduce(op, red), If((TID % WARP).eq(0), (Store(sh, TID // WARP, Load(red, Const(0))),)),
            Barrier(), Store(red, Const(0), total), Barrier()]


def strided_rows(var: str, n: int, body: tuple) -> For:
    """Threads of a block share a row of n elements: thread t takes t, t + block, ..."""
    return For(var, n, body, start=TID, step=ROW_BLOCK)
