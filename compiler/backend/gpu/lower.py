"""Kernel description -> LLVM IR, the part every target shares: expressions, loads/stores, loops,
branches and fused programs. A target subclass supplies the special registers, where shared and
local arrays live, barriers and warp shuffles."""
from __future__ import annotations

import llvmlite.ir as ir

from ...errors import CompileError
from ..llvm import mathfn, program
from ..llvm.emit import F32, I1, I8, I32, I64, MEM_TYPES, Fn
from . import kir

REG_TYPES = {"f32": F32, "i64": I64, "i32": I32, "i8": I8, "u8": I8, "bool": I1}
INT_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=="}


class KFn(Fn):
    """The shared emitter's function helpers (loops, intrinsics, fused programs) on a GPU kernel."""

    def __init__(self, module: ir.Module, fn: ir.Function, builder: ir.IRBuilder) -> None:
        self.module, self.fn, self.b, self.cache = module, fn, builder, {}


class Lowering:
    global_space = 1     # address space of kernel arguments and the buffers they point to

    def __init__(self, module: ir.Module, kernel: kir.Kernel) -> None:
        self.module, self.kernel = module, kernel
        self.env: dict[str, ir.Value] = {}
        self.f: KFn | None = None        # set by the subclass once the function exists
        self.args: tuple[ir.Value, ...] = ()

    # -- target hooks ------------------------------------------------------------------------
    def special(self, name: str) -> ir.Value:
        raise NotImplementedError

    def array_ptr(self, buf: kir.Shared | kir.Local, index: ir.Value) -> ir.Value:
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def warp_reduce(self, stmt: kir.WarpReduce) -> None:
        raise NotImplementedError

    # -- expressions -------------------------------------------------------------------------
    def expr(self, e: kir.Expr) -> ir.Value:
        f, b = self.f, self.f.b
        if isinstance(e, kir.Const):
            return ir.Constant(REG_TYPES[e.dtype], e.value)
        if isinstance(e, kir.Sym):
            if e.name in ("tid", "bid"):
                return self.special(e.name)
            if e.name not in self.env:
                raise CompileError(f"kernel {self.kernel.name}: {e.name} is not defined here "
                                   f"(thread values do not cross barriers; keep them in a Local)")
            return self.env[e.name]
        if isinstance(e, kir.Bin):
            return self._bin(e.op, self.expr(e.a), self.expr(e.b), e.a.dtype)
        if isinstance(e, kir.Select):
            return b.select(self.expr(e.cond), self.expr(e.a), self.expr(e.b))
        if isinstance(e, kir.Cast):
            return program.cast(f, self.expr(e.value), e.value.dtype, e.dtype)
        if isinstance(e, kir.Load):
            ty = MEM_TYPES[e.buf.dtype]
            return program.from_memory(f, b.load(self.ptr(e.buf, e.index), typ=ty), e.buf.dtype)
        if isinstance(e, kir.Apply):
            ops = [None if o is None else (self.expr(o), o.dtype) for o in e.operands]
            acc = (self.expr(e.acc), "f32") if e.acc is not None else None

            def load(k: int):
                return ops[k]

            consts = e.consts or (None,) * len(e.operands)
            return program.run(f, e.program, load, lambda k: consts[k], acc)[0]
        raise TypeError(e)

    def _bin(self, op: str, x: ir.Value, y: ir.Value, dtype: str) -> ir.Value:
        f, b = self.f, self.f.b
        if dtype == "f32":
            if op in INT_CMP:
                return b.fcmp_ordered(INT_CMP[op], x, y)
            if op in ("max", "min"):
                return (mathfn.fmax if op == "max" else mathfn.fmin)(f, x, y)
            return {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}[op](x, y)
        unsigned = dtype in program.UNSIGNED
        icmp = b.icmp_unsigned if unsigned else b.icmp_signed
        if op in INT_CMP:
            return icmp(INT_CMP[op], x, y)
        if op in ("max", "min"):
            return b.select(icmp(">" if op == "max" else "<", x, y), x, y)
        return {"add": b.add, "sub": b.sub, "mul": b.mul, "div": b.udiv if unsigned else b.sdiv,
                "rem": b.urem if unsigned else b.srem, "and": b.and_, "or": b.or_}[op](x, y)

    def ptr(self, buf: kir.Buffer, index: kir.Expr) -> ir.Value:
        i = self.expr(index)
        if isinstance(buf, kir.Global):
            base = self.args[buf.arg]
            if buf.offset:
                base = self.f.b.gep(base, [ir.Constant(I64, buf.offset)], source_etype=I8)
            return self.f.b.gep(base, [i], source_etype=MEM_TYPES[buf.dtype])
        return self.array_ptr(buf, i)

    # -- statements --------------------------------------------------------------------------
    def stmts(self, body: tuple) -> None:
        for s in body:
            self.stmt(s)

    def stmt(self, s) -> None:
        f, b = self.f, self.f.b
        if isinstance(s, kir.Let):
            self.env[s.name] = self.expr(s.value)
        elif isinstance(s, kir.Store):
            value = self.expr(s.value)
            if s.buf.dtype == "bool":
                value = b.zext(value, I8)
            b.store(value, self.ptr(s.buf, s.index))
        elif isinstance(s, kir.For) and s.unroll:
            for i in range(s.start, s.stop, s.step):
                self.env[s.var] = ir.Constant(I64, i)
                self.stmts(s.body)
        elif isinstance(s, kir.For):
            stop, start = (self.expr(kir.lift(v)) for v in (s.stop, s.start))
            with f.loop(stop, start, s.step) as i:
                self.env[s.var] = i
                self.stmts(s.body)
        elif isinstance(s, kir.If) and not s.orelse:
            with b.if_then(self.expr(s.cond)):
                self.stmts(s.body)
        elif isinstance(s, kir.If):
            with b.if_else(self.expr(s.cond)) as (then, otherwise):
                with then:
                    self.stmts(s.body)
                with otherwise:
                    self.stmts(s.orelse)
        elif isinstance(s, kir.Barrier):
            self.barrier()
        elif isinstance(s, kir.WarpReduce):
            self.warp_reduce(s)
        else:
            raise TypeError(s)

    def combine(self, op: str, x: ir.Value, y: ir.Value) -> ir.Value:
        return self._bin(op, x, y, "f32")
