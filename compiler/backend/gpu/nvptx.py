"""NVPTX: `ptx_kernel` functions, PTX special registers, bar.sync and shfl.sync; PTX text out,
at the lowest PTX ISA version that supports each SM."""
from __future__ import annotations

import llvmlite.ir as ir

from ..llvm.emit import F32, I32, VOID
from ..llvm.machine import optimize, target_machine
from . import kir
from .device import DeviceLowering, new_module

TRIPLE = "nvptx64-nvidia-cuda"
# Lowest PTX ISA per SM, and the CUDA release that introduced it.
PTX_ISA = {"sm_75": (63, "10.0"), "sm_80": (70, "11.0"), "sm_86": (71, "11.1"), "sm_87": (74, "11.4"),
           "sm_89": (78, "11.8"), "sm_90": (78, "11.8"), "sm_100": (86, "12.8"), "sm_120": (87, "12.8")}
# Minimum Linux driver per CUDA release (CUDA release notes, table 3): it JITs that release's PTX ISA,
# and loads cubins from a ptxas of the release's major version (minor version compatibility).
DRIVER_FOR_CUDA = {"10.0": "410.48", "11.0": "450.36.06", "11.1": "455.23", "11.4": "470.42.01",
                   "11.8": "520.61.05", "12.0": "525.60.13", "12.8": "570.26", "13.0": "580.65.06"}


class NvptxLowering(DeviceLowering):
    triple = TRIPLE
    calling_convention = "ptx_kernel"

    def special_intrinsic(self, name: str) -> str:
        return {"tid": "llvm.nvvm.read.ptx.sreg.tid.x", "bid": "llvm.nvvm.read.ptx.sreg.ctaid.x"}[name]

    def kernel_attributes(self) -> list[str]:
        return [f'"nvvm.maxntid"="{self.kernel.block}"']

    def barrier(self) -> None:
        fn = self._intrinsic("llvm.nvvm.barrier.cta.sync.aligned.all", VOID, [I32])
        self.f.b.call(fn, [ir.Constant(I32, 0)])

    def shuffle_xor(self, value: ir.Value, lanes: int) -> ir.Value:
        fn = self._intrinsic("llvm.nvvm.shfl.sync.bfly.f32", F32, [I32, F32, I32, I32])
        return self.f.b.call(fn, [ir.Constant(I32, -1), value, ir.Constant(I32, lanes),
                                  ir.Constant(I32, 31)])


def module_ir(kernels: list[kir.Kernel]) -> str:
    module = new_module(TRIPLE)
    for k in kernels:
        NvptxLowering(module, k)
    return str(module)


def emit_ptx(text: str, sm: str) -> str:
    """PTX for one SM at its lowest PTX ISA (`+ptxNN`)."""
    isa, _ = PTX_ISA[sm]
    tm = target_machine(TRIPLE, sm, f"+ptx{isa}")
    return tm.emit_assembly(optimize(text, tm))


def ptx_release(sm: str) -> str:
    """The CUDA release whose driver first JITs this SM's PTX."""
    return PTX_ISA[sm][1]


def cubin_release(ptxas_major: int) -> str:
    """The CUDA release whose driver first loads cubins from a ptxas of this major version."""
    return f"{ptxas_major}.0"


def driver_api_version(release: str) -> int:
    """A CUDA release as cuDriverGetVersion reports it: "11.8" -> 11080."""
    major, minor = release.split(".")
    return int(major) * 1000 + int(minor) * 10
