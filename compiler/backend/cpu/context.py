"""What a kernel emitter sees: the module and variant being built, where every tensor lives,
and how to split work over the launcher's thread pool."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import llvmlite.ir as ir
import numpy as np

from ...ir.graph import Node, Value
from ..llvm.emit import I8, I64, PTR, VOID, Fn
from ..llvm.memplan import MemoryPlan
from .target import Variant

# Where a kernel's operands live: {weights, inputs[], outputs[], scratch, pool}, the entry's state.
SLOTS = {"weights": 0, "input": 1, "output": 2, "scratch": 3, "pool": 4}
Address = tuple[str, int, int]   # (space, input/output index, byte offset)
# A layer gets a piece per this much work (flops, or flop-equivalents for memory-bound loops);
# less runs on the caller. Handing a piece to another thread costs about a microsecond, but a
# layer left to one thread also reads the part of its input the other threads wrote, from their
# cores' caches: small pieces pay (ResNet-18 at 2 threads: 250,000 -> 30,000 took 12.5 -> 12.3 ms,
# 18.0 -> 17.1 ms while the host placed the two cores apart).
PARALLEL_MIN_WORK = 30_000


class Context:
    """One kernel (one node, one variant) in a module of its own. The kernel and its tasks reach
    their operands through a frame of pointers (argument 0) that the call site fills in: one per
    memory space, at the first address the kernel uses in it, and other operands in that space at
    constant offsets from it. So the code names no absolute address and nodes whose operands lie
    alike share one kernel, while LLVM still sees that distinct operands do not overlap.

    With `own_slots` every operand has a slot of its own, and nodes of the same shapes share one
    kernel wherever the plan put their tensors: for GEMM kernels, whose micro-kernels take their
    operands as noalias arguments anyway (DenseNet-121: 66 conv kernels per variant, not 109)."""

    def __init__(self, module: ir.Module, variant: Variant, plan: MemoryPlan, own_slots: bool = False) -> None:
        self.module, self.variant, self.plan = module, variant, plan
        self.own_slots = own_slots
        self.count = 0
        self.cache: dict = {}  # functions shared by several places of the kernel
        self.frame: dict[Address, int] = {}  # a space's first address in the kernel -> its frame slot
        self.slicing: tuple[ir.Value, int] | None = None  # (current slice, slices) inside slices()

    def name(self, hint: str) -> str:
        self.count += 1
        return f"kiln_{self.variant.symbol}_{self.count}_{hint}"

    def function(self, hint: str, args=(PTR,)) -> Fn:
        return Fn(self.module, self.name(hint), self.variant, args)

    def _at(self, f: Fn, space: str, index: int, offset: int) -> ir.Value:
        key = (space, index, offset)
        if key not in f.cache:
            origin = key if self.own_slots else next((a for a in self.frame if a[:2] == (space, index)), key)
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

    @contextmanager
    def slices(self, f: Fn, count: int) -> Iterator[None]:
        """Runs the block `count` times, one slice after the other; each parallel call inside runs
        only slice s's share of its tasks, [s*n/count, (s+1)*n/count). A kernel whose tasks' slowest
        index is the batch so goes through the batch in parts, each small enough that what one
        step writes for the next is still in cache when that step reads it."""
        if count == 1:
            yield
            return
        with f.loop(count) as s:
            self.slicing = (s, count)
            yield
        self.slicing = None

    def parallel_chunks(self, f: Fn, hint: str, n: int, work: int,
                        body: Callable[[Fn, ir.Value, ir.Value], None]) -> None:
        """body(task_fn, begin, end) handles tasks [begin, end), a contiguous run of them.

        The pool gets at most one piece per PARALLEL_MIN_WORK of work, so a layer uses only as
        many threads as pay for themselves, and one too small to split runs on the caller."""
        current, count = self.slicing or (None, 1)
        assert n % count == 0, f"{hint}: {n} tasks do not split into {count} slices"
        share = n // count
        pieces = min(share, work // count // PARALLEL_MIN_WORK)
        task = Fn(self.module, self.name(hint), self.variant, (PTR, I64, I64))
        body(task, *task.args[1:])
        task.finish()
        first = f.b.mul(current, f.i64(share)) if current is not None else f.i64(0)
        if pieces <= 1:
            f.b.call(task.fn, [f.args[0], first, f.b.add(first, f.i64(share))])
            return
        runner, arg = self._runner(f, task, share, pieces, first if current is not None else None)
        pfor = self.module.globals.get("kiln_parallel_for") or ir.Function(
            self.module, ir.FunctionType(VOID, [PTR, PTR, PTR, I64]), "kiln_parallel_for")
        f.b.call(pfor, [self.slot(f, "pool"), runner.fn, arg, f.i64(pieces)])

    def _runner(self, f: Fn, task: Fn, share: int, pieces: int, first: ir.Value | None
                ) -> tuple[Fn, ir.Value]:
        """What the pool calls for pieces [begin, end): task over its tasks, offset by `first`
        (then the pool's argument is a pair (frame, first) on f's stack), and the argument."""
        runner = Fn(self.module, self.name("run"), self.variant, (PTR, I64, I64))
        r = runner.b
        begin, end = runner.args[1:]
        if pieces < share:
            begin, end = (r.udiv(r.mul(x, runner.i64(share)), runner.i64(pieces)) for x in (begin, end))
        frame, arg = runner.args[0], f.args[0]
        if first is not None:
            arg = f.pro.alloca(PTR, size=I64(2))
            f.b.store(f.args[0], arg)
            f.b.store(first, f.b.gep(arg, [f.i64(1)], source_etype=PTR))
            frame = r.load(runner.args[0], typ=PTR)
            offset = r.load(r.gep(runner.args[0], [runner.i64(1)], source_etype=PTR), typ=I64)
            begin, end = r.add(begin, offset), r.add(end, offset)
        r.call(task.fn, [frame, begin, end])
        runner.finish()
        return runner, arg
