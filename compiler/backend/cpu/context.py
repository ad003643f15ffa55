"""What a kernel emitter sees: the module and variant being built, where every tensor lives,
and how to split work over the launcher's thread pool."""
from __future__ import annotations

from typing import Callable

import llvmlite.ir as ir
import numpy as np

from ...ir.graph import Node, Value
from ..llvm.emit import I8, I64, PTR, VOID, Fn
from ..llvm.memplan import MemoryPlan
from .target import Variant

# Where a kernel's operands live: {weights, inputs[], outputs[], scratch, pool}, the entry's state.
SLOTS = {"weights": 0, "input": 1, "output": 2, "scratch": 3, "pool": 4}
Address = tuple[str, int, int]   # (space, input/output index, byte offset)
# Below this much work (flops, or flop-equivalents for memory-bound loops: ~1-2 us) handing
# a piece of a layer to another thread of the pool costs more than it saves.
PARALLEL_MIN_WORK = 250_000


class Context:
    """One kernel (one node, one variant) in a module of its own. The kernel and its tasks reach
    their operands through a frame of pointers (argument 0) that the call site fills in: one per
    memory space, at the first address the kernel uses in it, and other operands in that space at
    constant offsets from it. So the code names no absolute address and nodes whose operands lie
    alike share one kernel, while LLVM still sees that distinct operands do not overlap."""

    def __init__(self, module: ir.Module, variant: Variant, plan: MemoryPlan) -> None:
        self.module, self.variant, self.plan = module, variant, plan
        self.count = 0
        self.cache: dict = {}  # functions shared by several places of the kernel
        self.frame: dict[Address, int] = {}  # a space's first address in the kernel -> its frame slot

    def name(self, hint: str) -> str:
        self.count += 1
        return f"kiln_{self.variant.symbol}_{self.count}_{hint}"

    def function(self, hint: str, args=(PTR,)) -> Fn:
        return Fn(self.module, self.name(hint), self.variant, args)

    def _at(self, f: Fn, space: str, index: int, offset: int) -> ir.Value:
        key = (space, index, offset)
        if key not in f.cache:
            origin = next((a for a in self.frame if a[:2] == (space, index)), key)
            slot = self.frame.setdefault(origin, len(self.frame))
            base = f.cache.get(origin) or f.pro.load(f.pro.gep(f.args[0], [f.i64(8 * slot)], source_etype=I8),
                                                     typ=PTR)
            f.cache[origin] = base
            f.cache[key] = f.pro.gep(base, [f.i64(offset - origin[2])], source_etype=I8) if key != origin else base
        return f.cache[key]

    def slot(self, f: Fn, space: str) -> ir.Value:
        """Base pointer of the weights, scratch or pool slot."""
        return self._at(f, space, 0, 0)

    def ptr(self, f: Fn, v: Value) -> ir.Value:
        loc = self.plan.loc(v)
        return self._at(f, loc.space, loc.index, loc.offset)

    def temp(self, f: Fn, node: Node) -> ir.Value:
        return self._at(f, "scratch", 0, self.plan.temps[node].offset)

    def derived(self, name: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """The derived weight `name` (e.g. pre-packed), made once for all variants and nodes."""
        known = self.plan.weights.tensors.get(name)
        return known[0] if known is not None else make()

    def weight(self, f: Fn, name: str, data) -> ir.Value:
        """Pointer to a derived weight tensor (e.g. pre-packed), added to the weights file."""
        return self._at(f, "weights", 0, self.plan.weights.add(name, data))

    def parallel(self, f: Fn, hint: str, n: int, work: int,
                 body: Callable[[Fn, ir.Value], None]) -> None:
        """Run body(task_fn, t) for t in [0, n): over the pool if worth it, else inline-called."""
        def chunk(task: Fn, begin: ir.Value, end: ir.Value) -> None:
            with task.loop(end, begin) as t:
                body(task, t)

        self.parallel_chunks(f, hint, n, work, chunk)

    def parallel_chunks(self, f: Fn, hint: str, n: int, work: int,
                        body: Callable[[Fn, ir.Value, ir.Value], None]) -> None:
        """body(task_fn, begin, end) handles tasks [begin, end), a contiguous run of them.

        The pool gets at most one piece per PARALLEL_MIN_WORK of work, so a layer uses only as
        many threads as pay for themselves, and one too small to split runs on the caller."""
        pieces = min(n, work // PARALLEL_MIN_WORK)
        task = Fn(self.module, self.name(hint), self.variant, (PTR, I64, I64))
        begin, end = task.args[1:]
        if 1 < pieces < n:
            begin, end = (task.b.udiv(task.b.mul(x, task.i64(n)), task.i64(pieces)) for x in (begin, end))
        body(task, begin, end)
        task.finish()
        if pieces > 1:
            pfor = self.module.globals.get("kiln_parallel_for") or ir.Function(
                self.module, ir.FunctionType(VOID, [PTR, PTR, PTR, I64]), "kiln_parallel_for")
            f.b.call(pfor, [self.slot(f, "pool"), task.fn, f.args[0], f.i64(pieces)])
        else:
            f.b.call(task.fn, [f.args[0], f.i64(0), f.i64(n)])
