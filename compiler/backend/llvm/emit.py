"""LLVM IR building blocks shared by every kernel: functions with variant attributes, counted
loops, intrinsics, vectors. One emitter serves every target; a `CodeVariant` says what differs."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol, Sequence

import llvmlite.ir as ir

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, PTR, VOID = ir.FloatType(), ir.PointerType(), ir.VoidType()
MEM_TYPES = {"f32": F32, "i64": I64, "i32": I32, "i8": I8, "u8": I8, "bool": I8}
ELEM_BYTES = {"f32": 4, "i64": 8, "i32": 4, "i8": 1, "u8": 1, "bool": 1}


class CodeVariant(Protocol):
    """What the emitter needs of one code variant (the CPU backend's `target.Variant`)."""

    vector_width: int

    def function_attributes(self) -> list[str]: ...


def add_attribute(fn: ir.Function, text: str) -> None:
    # llvmlite only validates enum attributes; key="value" attributes go in verbatim.
    set.add(fn.attributes, text)


class Fn:
    """One function under construction, with its builder and the variant it is compiled for."""

    def __init__(self, module: ir.Module, name: str, variant: CodeVariant,
                 args: Sequence[ir.Type] = (PTR,), internal: bool = True) -> None:
        self.module, self.variant = module, variant
        self.fn = ir.Function(module, ir.FunctionType(VOID, list(args)), name)
        if internal:
            self.fn.linkage = "internal"
        self.fn.attributes.add("nounwind")
        for a in variant.function_attributes():
            add_attribute(self.fn, a)
        # Pointers derived from the context are computed once, in a prologue before any loop.
        self.pro = ir.IRBuilder(self.fn.append_basic_block("prologue"))
        self._body = self.fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self._body)
        self.cache: dict = {}

    @property
    def args(self) -> tuple[ir.Argument, ...]:
        return tuple(self.fn.args)

    def finish(self) -> None:
        self.pro.branch(self._body)
        self.b.ret_void()

    # -- scalars ---------------------------------------------------------------------------
    @staticmethod
    def i64(n: int) -> ir.Constant:
        return ir.Constant(I64, int(n))

    def idx(self, n: int | ir.Value) -> ir.Value:
        return self.i64(n) if isinstance(n, int) else n

    def gep(self, ptr: ir.Value, index: int | ir.Value, elem: ir.Type = F32) -> ir.Value:
        return self.b.gep(ptr, [self.idx(index)], inbounds=True, source_etype=elem)

    def byte_gep(self, ptr: ir.Value, offset: int | ir.Value) -> ir.Value:
        return self.gep(ptr, offset, I8)

    def madd(self, *terms: tuple[int | ir.Value, int]) -> ir.Value:
        """sum(index * coefficient), skipping zero coefficients; constants folded."""
        acc: ir.Value | None = None
        const = 0
        for v, c in terms:
            if c == 0:
                continue
            if isinstance(v, int):
                const += v * c
                continue
            t = v if c == 1 else self.b.mul(v, self.i64(c))
            acc = t if acc is None else self.b.add(acc, t)
        if acc is None:
            return self.i64(const)
        return acc if const == 0 else self.b.add(acc, self.i64(const))

    # -- control flow ----------------------------------------------------------------------
    @contextmanager
    def loop(self, stop: int | ir.Value, start: int | ir.Value = 0, step: int = 1,
             vector_width: int | None = None) -> Iterator[ir.Value]:
        """for (i = start; i < stop; i += step) — the body is emitted inside the with-block.

        `vector_width` tells LLVM's loop vectorizer the width to use instead of letting it choose."""
        b = self.b
        pre = b.block
        head = self.fn.append_basic_block("loop")
        body = self.fn.append_basic_block("body")
        done = self.fn.append_basic_block("done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(self.idx(start), pre)
        b.cbranch(b.icmp_signed("<", i, self.idx(stop)), body, done)
        b.position_at_end(body)
        yield i
        nxt = b.add(i, self.i64(step))
        i.add_incoming(nxt, b.block)
        latch = b.branch(head)
        if vector_width:
            latch.set_metadata("llvm.loop", self._vectorize_hint(vector_width))
        b.position_at_end(done)

    def _vectorize_hint(self, width: int) -> ir.MDValue:
        """Loop metadata fixing the vector width: a loop ID of its own, which refers to itself."""
        hint = self.module.add_metadata([ir.MetaDataString(self.module, "llvm.loop.vectorize.width"),
                                         ir.Constant(I32, width)])
        loop_id = ir.values.MDValue(self.module, [hint], name=str(len(self.module.metadata)))
        loop_id.operands = (loop_id, hint)
        return loop_id

    @contextmanager
    def if_then(self, cond: ir.Value) -> Iterator[None]:
        with self.b.if_then(cond):
            yield

    def if_else(self, cond: ir.Value):
        return self.b.if_else(cond)

    # -- intrinsics and vectors --------------------------------------------------------------
    def intrinsic(self, name: str, ret: ir.Type, args: Sequence[ir.Value]) -> ir.Value:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, [a.type for a in args]), name)
        return self.b.call(fn, list(args))

    def vec(self, lanes: int | None = None, elem: ir.Type = F32) -> ir.VectorType:
        return ir.VectorType(elem, lanes or self.variant.vector_width)

    def splat(self, value: ir.Value, ty: ir.Type) -> ir.Value:
        if not isinstance(ty, ir.VectorType):
            return value
        if isinstance(value, ir.Constant):
            return ir.Constant(ty, [value.constant] * ty.count)
        one = self.b.insert_element(ir.Constant(ty, ir.Undefined), value, self.i64(0))
        return self.b.shuffle_vector(one, ir.Constant(ty, ir.Undefined),
                                     ir.Constant(ir.VectorType(I32, ty.count), [0] * ty.count))

    def const_f(self, x: float, ty: ir.Type) -> ir.Constant:
        if isinstance(ty, ir.VectorType):
            return ir.Constant(ty, [float(x)] * ty.count)
        return ir.Constant(ty, float(x))

    def const_i(self, x: int, ty: ir.Type) -> ir.Constant:
        if isinstance(ty, ir.VectorType):
            return ir.Constant(ty, [int(x)] * ty.count)
        return ir.Constant(ty, int(x))

    @staticmethod
    def suffix(ty: ir.Type) -> str:
        if isinstance(ty, ir.VectorType):
            return f"v{ty.count}{Fn.suffix(ty.element)}"
        return {F32: "f32", I64: "i64", I32: "i32", I8: "i8", I1: "i1"}[ty]

    def lane_mask(self, lanes: int, active: int) -> ir.Constant:
        return ir.Constant(ir.VectorType(I1, lanes), [int(i < active) for i in range(lanes)])

    def load_vec(self, ptr: ir.Value, ty: ir.VectorType, active: int | None = None) -> ir.Value:
        if active is None or active >= ty.count:
            return self.b.load(ptr, typ=ty, align=4)
        return self.intrinsic(f"llvm.masked.load.{self.suffix(ty)}.p0", ty, [
            ptr, ir.Constant(I32, 4), self.lane_mask(ty.count, active), self.const_f(0.0, ty)])

    def store_vec(self, value: ir.Value, ptr: ir.Value, active: int | None = None) -> None:
        ty = value.type
        if active is None or active >= ty.count:
            self.b.store(value, ptr, align=4)
            return
        self.intrinsic(f"llvm.masked.store.{self.suffix(ty)}.p0", VOID, [
            value, ptr, ir.Constant(I32, 4), self.lane_mask(ty.count, active)])

    def fmuladd(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        # fmuladd, not fma: it must not become a libm call on targets without FMA.
        return self.intrinsic(f"llvm.fmuladd.{self.suffix(a.type)}", a.type, [a, b, c])
