"""Lowering to plain CPU loops with the same grid, block and shared-memory semantics: a loop
over blocks; inside, the statements between barriers (and warp collectives) run as one loop
over the block's threads each, in order. Shared arrays are per-block stack arrays, locals get
one slot per thread, warp reductions combine the 32 lanes' slots."""
from __future__ import annotations

import llvmlite.ir as ir

from ...errors import CompileError
from ..llvm.emit import I64, MEM_TYPES, PTR, VOID
from . import kir
from .lower import KFn, Lowering


class CpuLowering(Lowering):
    global_space = 0

    def __init__(self, module: ir.Module, kernel: kir.Kernel) -> None:
        super().__init__(module, kernel)
        fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, I64, I64]), kernel.name)
        fn.attributes.add("nounwind")
        entry, body = fn.append_basic_block("entry"), fn.append_basic_block("body")
        pro = ir.IRBuilder(entry)
        self.f = KFn(module, fn, ir.IRBuilder(body))
        self.args = tuple(fn.args[:2])
        self.arrays = {s.name: (_array(pro, s.dtype, s.size), 0) for s in kernel.shared}
        self.arrays.update({a.name: (_array(pro, a.dtype, a.size * kernel.block), a.size) for a in kernel.locals})
        self.tid: ir.Value | None = None
        with self.f.loop(fn.args[3], fn.args[2]) as bid:
            self.bid = bid
            self.stmts(kernel.body)
        self.f.b.ret_void()
        pro.branch(body)

    def special(self, name: str) -> ir.Value:
        if name == "bid":
            return self.bid
        if self.tid is None:
            raise CompileError(f"kernel {self.kernel.name}: a barrier or warp collective sits under "
                               f"thread-dependent control flow")
        return self.tid

    def array_ptr(self, buf: kir.Shared | kir.Local, index: ir.Value) -> ir.Value:
        arr, per_thread = self.arrays[buf.name]
        if per_thread:
            index = self.f.b.add(self.f.b.mul(self.special("tid"), ir.Constant(I64, per_thread)), index)
        return self.f.b.gep(arr, [index], source_etype=MEM_TYPES[buf.dtype])

    def stmts(self, body: tuple) -> None:
        if self.tid is not None:        # inside a thread phase: plain statements
            super().stmts(body)
            return
        phase: list = []
        for s in body:
            if kir.syncs(s):
                self._threads(phase)
                phase = []
                self.stmt(s)
            else:
                phase.append(s)
        self._threads(phase)

    def _threads(self, phase: list) -> None:
        if not phase:
            return
        saved = dict(self.env)
        with self.f.loop(self.kernel.block) as tid:
            self.tid = tid
            super().stmts(tuple(phase))
        self.tid, self.env = None, saved

    def barrier(self) -> None:
        """Nothing to do: the phases on either side already run one after the other."""

    def warp_reduce(self, stmt: kir.WarpReduce) -> None:
        f, b = self.f, self.f.b
        arr, size = self.arrays[stmt.buf.name]
        ty = MEM_TYPES[stmt.buf.dtype]

        def slot(lane: ir.Value) -> ir.Value:
            i = b.add(b.mul(lane, ir.Constant(I64, size)), ir.Constant(I64, stmt.index))
            return b.gep(arr, [i], source_etype=ty)

        with f.loop(self.kernel.block, 0, kir.WARP) as base:
            acc = b.load(slot(base), typ=ty)
            for lane in range(1, kir.WARP):
                acc = self.combine(stmt.op, acc, b.load(slot(b.add(base, ir.Constant(I64, lane))), typ=ty))
            with f.loop(kir.WARP) as lane:
                b.store(acc, slot(b.add(base, lane)))


def _array(pro: ir.IRBuilder, dtype: str, size: int) -> ir.Value:
    a = pro.alloca(ir.ArrayType(MEM_TYPES[dtype], size))
    a.type = ir.PointerType()      # index it by element, like every other buffer
    return a


def module_ir(kernels: list[kir.Kernel], triple: str) -> str:
    module = ir.Module(name="kiln_gpu_on_cpu")
    module.triple = triple
    for k in kernels:
        CpuLowering(module, k)
    return str(module)
