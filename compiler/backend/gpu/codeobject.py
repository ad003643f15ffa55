"""AMDGPU code objects: link the relocatable object with `ld.lld -shared` (zig's), then check
the result with pyelftools — machine, arch in e_flags, a kernel descriptor per kernel and the
AMDHSA metadata note — so a broken object fails the build, not the server."""
from __future__ import annotations

import io
import os
import subprocess
import tempfile
from pathlib import Path

from elftools.elf.elffile import ELFFile

from kiln.toolchain.zig import zig_path
from ...errors import CompileError

EM_AMDGPU = 224
ELFOSABI_AMDGPU_HSA = 64
# e_ident[EI_ABIVERSION] per code object version (LLVM's ELFABIVERSION_AMDGPU_HSA_V3 = 1 ...): kiln emits
# v4, which every ROCm 5.x/6.x loader accepts (the 5.2 loader rejects LLVM's default v6; 6.1 takes v2-v5).
ABI_VERSION_V4 = 2
NT_AMDGPU_METADATA = 32
EF_AMDGPU_MACH_MASK = 0xFF
EF_AMDGPU_MACH = {"gfx900": 0x2C, "gfx906": 0x2F, "gfx908": 0x30, "gfx90a": 0x3F, "gfx940": 0x40,
                  "gfx941": 0x4B, "gfx942": 0x4C, "gfx1030": 0x36, "gfx1100": 0x41, "gfx1101": 0x46,
                  "gfx1102": 0x47, "gfx1200": 0x48, "gfx1201": 0x4E}


def link(obj: bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="kiln-lld-") as tmp:
        src, out = Path(tmp) / "k.o", Path(tmp) / "k.co"
        src.write_bytes(obj)
        r = subprocess.run([zig_path(), "ld.lld", "-shared", "--build-id=none", "-o", os.fspath(out),
                            os.fspath(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise CompileError(f"ld.lld failed: {r.stderr.strip()}")
        return out.read_bytes()


def check(code_object: bytes, arch: str, kernels: list[str]) -> None:
    elf = ELFFile(io.BytesIO(code_object))
    if elf.header.e_machine != "EM_AMDGPU":
        raise CompileError(f"{arch} code object: machine {elf.header.e_machine}, expected AMDGPU ({EM_AMDGPU})")
    osabi, abi = code_object[7], code_object[8]  # e_ident[EI_OSABI], [EI_ABIVERSION] (pyelftools names 64 as ARM's)
    if osabi != ELFOSABI_AMDGPU_HSA or abi != ABI_VERSION_V4:
        raise CompileError(f"{arch} code object: OS/ABI {osabi} version {abi}, expected AMDHSA code object v4 "
                           f"(ABI version {ABI_VERSION_V4})")
    mach = elf.header.e_flags & EF_AMDGPU_MACH_MASK
    if arch in EF_AMDGPU_MACH and mach != EF_AMDGPU_MACH[arch]:
        raise CompileError(f"{arch} code object: EF_AMDGPU_MACH is {mach:#x}, expected {EF_AMDGPU_MACH[arch]:#x}")
    symbols = {s.name for s in elf.get_section_by_name(".dynsym").iter_symbols()}
    missing = [k for k in kernels if f"{k}.kd" not in symbols]
    if missing:
        raise CompileError(f"{arch} code object: no kernel descriptor for {', '.join(missing)}")
    notes = [n for seg in elf.iter_segments() if seg.header.p_type == "PT_NOTE" for n in seg.iter_notes()]
    if not any(n.n_name == "AMDGPU" and n.n_type == NT_AMDGPU_METADATA for n in notes):
        raise CompileError(f"{arch} code object: no AMDHSA metadata note (NT_AMDGPU_METADATA)")
