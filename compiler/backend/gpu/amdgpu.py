"""AMDGPU: `amdgpu_kernel` functions, workitem/workgroup ids, LDS in addrspace(3), scratch in
addrspace(5), s_barrier and ds_bpermute; relocatable objects out (code object v4, which every
ROCm 5.x/6.x HSA runtime loads)."""
from __future__ import annotations

import llvmlite.ir as ir

from ..llvm.emit import F32, I32, VOID
from ..llvm.machine import optimize, target_machine
from . import kir
from .device import DeviceLowering, new_module

TRIPLE = "amdgcn-amd-amdhsa"
CODE_OBJECT_VERSION = 400


class AmdgpuLowering(DeviceLowering):
    triple = TRIPLE
    calling_convention = "amdgpu_kernel"
    local_space = 5

    def special_intrinsic(self, name: str) -> str:
        return {"tid": "llvm.amdgcn.workitem.id.x", "bid": "llvm.amdgcn.workgroup.id.x"}[name]

    def kernel_attributes(self) -> list[str]:
        return [f'"amdgpu-flat-work-group-size"="1,{self.kernel.block}"']

    def barrier(self) -> None:
        b = self.f.b
        b.fence("release", "workgroup")
        b.call(self._intrinsic("llvm.amdgcn.s.barrier", VOID, []), [])
        b.fence("acquire", "workgroup")

    def shuffle_xor(self, value: ir.Value, lanes: int) -> ir.Value:
        b = self.f.b
        lo = b.call(self._intrinsic("llvm.amdgcn.mbcnt.lo", I32, [I32, I32]),
                    [ir.Constant(I32, -1), ir.Constant(I32, 0)])
        lane = b.call(self._intrinsic("llvm.amdgcn.mbcnt.hi", I32, [I32, I32]), [ir.Constant(I32, -1), lo])
        addr = b.shl(b.xor(lane, ir.Constant(I32, lanes)), ir.Constant(I32, 2))
        got = b.call(self._intrinsic("llvm.amdgcn.ds.bpermute", I32, [I32, I32]),
                     [addr, b.bitcast(value, I32)])
        return b.bitcast(got, F32)


def module_ir(kernels: list[kir.Kernel]) -> str:
    module = new_module(TRIPLE)
    flag = module.add_metadata([ir.Constant(I32, 1), ir.MetaDataString(module, "amdhsa_code_object_version"),
                                ir.Constant(I32, CODE_OBJECT_VERSION)])
    module.add_named_metadata("llvm.module.flags", flag)
    for k in kernels:
        AmdgpuLowering(module, k)
    return str(module)


def emit_object(text: str, arch: str) -> bytes:
    tm = target_machine(TRIPLE, arch, "")
    return tm.emit_object(optimize(text, tm))
