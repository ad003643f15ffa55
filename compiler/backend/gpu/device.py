"""Lowering for a GPU: one LLVM function per kernel taking (weights, activations) pointers;
shared arrays are module globals in the target's shared address space, locals are allocas."""
from __future__ import annotations

import llvmlite.ir as ir
from llvmlite.ir import instructions

from ..llvm.emit import I32, I64, MEM_TYPES, VOID
from . import kir
from .lower import KFn, Lowering


class _Alloca(instructions.AllocaInstr):
    """llvmlite's alloca cannot name an address space; AMDGPU's stack is addrspace(5)."""

    def __init__(self, parent, typ: ir.Type, space: int, name: str) -> None:
        super().__init__(parent, typ, None, name)
        self.type, self.space = ir.PointerType(addrspace=space), space

    def descr(self, buf: list) -> None:
        buf.append(f"alloca {self.allocated_type}, addrspace({self.space})")


class DeviceLowering(Lowering):
    """Subclasses set triple, calling convention and the intrinsics below."""

    triple = ""
    calling_convention = ""
    shared_space = 3
    local_space = 0

    def __init__(self, module: ir.Module, kernel: kir.Kernel) -> None:
        super().__init__(module, kernel)
        ptr = ir.PointerType(addrspace=self.global_space)
        fn = ir.Function(module, ir.FunctionType(VOID, [ptr, ptr]), kernel.name)
        fn.calling_convention = self.calling_convention
        fn.attributes.add("nounwind")
        for a in self.kernel_attributes():
            set.add(fn.attributes, a)
        entry = fn.append_basic_block("entry")
        body = fn.append_basic_block("body")
        pro = ir.IRBuilder(entry)
        self.f = KFn(module, fn, ir.IRBuilder(body))
        self.args = tuple(fn.args)
        self.arrays: dict[str, ir.Value] = {}
        for s in kernel.shared:
            g = ir.GlobalVariable(module, ir.ArrayType(MEM_TYPES[s.dtype], s.size), f"{kernel.name}.{s.name}",
                                  addrspace=self.shared_space)
            g.linkage, g.initializer, g.align = "internal", ir.Constant(g.value_type, ir.Undefined), 16
            g.type = ir.PointerType(addrspace=self.shared_space)   # indexed by element
            self.arrays[s.name] = g
        for loc in kernel.locals:
            ty = ir.ArrayType(MEM_TYPES[loc.dtype], loc.size)
            if self.local_space:
                a = _Alloca(pro.block, ty, self.local_space, loc.name)
                pro._insert(a)
            else:
                a = pro.alloca(ty, name=loc.name)
                a.type = ir.PointerType()
            self.arrays[loc.name] = a
        self.specials: dict[str, ir.Value] = {}
        for name in ("tid", "bid"):
            self.specials[name] = pro.zext(pro.call(self._intrinsic(self.special_intrinsic(name), I32, []), []), I64)
        self.stmts(kernel.body)
        self.f.b.ret_void()
        pro.branch(body)

    def _intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        fn = self.module.globals.get(name)
        return fn or ir.Function(self.module, ir.FunctionType(ret, args), name)

    def kernel_attributes(self) -> list[str]:
        return []

    def special_intrinsic(self, name: str) -> str:
        raise NotImplementedError

    def special(self, name: str) -> ir.Value:
        return self.specials[name]

    def array_ptr(self, buf: kir.Shared | kir.Local, index: ir.Value) -> ir.Value:
        return self.f.b.gep(self.arrays[buf.name], [index], source_etype=MEM_TYPES[buf.dtype])

    def shuffle_xor(self, value: ir.Value, lanes: int) -> ir.Value:
        raise NotImplementedError

    def warp_reduce(self, stmt: kir.WarpReduce) -> None:
        b = self.f.b
        p = self.array_ptr(stmt.buf, ir.Constant(I64, stmt.index))
        v = b.load(p, typ=MEM_TYPES[stmt.buf.dtype])
        lanes = kir.WARP // 2
        while lanes:
            v = self.combine(stmt.op, v, self.shuffle_xor(v, lanes))
            lanes //= 2
        b.store(v, p)


def new_module(triple: str) -> ir.Module:
    module = ir.Module(name="kiln")
    module.triple = triple
    return module
