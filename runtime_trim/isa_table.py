"""The GPU ISAs a vendor runtime can drive, read from the runtime library itself. ROCr's ISA table
names each ISA ("gfx942", "amdgcn-amd-amdhsa--gfx942:sramecc+") in its read-only data, and the
runtime drops a GPU whose ISA is not in it: a bundle with code for such an arch would never find its
GPU, so trimming refuses to make one."""

from __future__ import annotations

import re
from pathlib import Path

from elftools.elf.elffile import ELFFile

from kiln.runtime_trim.closure import Closure, ClosureError
from kiln.runtime_trim.sysroot import Sysroot

# The first ROCm release whose runtime knows the arch (ROCR-Runtime's isa.cpp history).
FIRST_ROCM = {"gfx1100": "5.3", "gfx1101": "5.3", "gfx1102": "5.3", "gfx940": "5.7", "gfx941": "5.7", "gfx942": "5.7"}
_ISA = re.compile(rb"(?<![0-9a-z])gfx[0-9a-f]{3,4}(?![0-9a-z])")
_READ_ONLY = (".rodata", ".data.rel.ro")


def known_isas(library: Path) -> set[str]:
    with library.open("rb") as handle:
        elf = ELFFile(handle)
        data = b"".join(s.data() for s in elf.iter_sections() if s.name in _READ_ONLY)
    return {m.decode() for m in _ISA.findall(data)}


def check(closure: Closure, library: str, archs: list[str], sysroot: Sysroot) -> None:
    """Raises ClosureError naming the first requested arch the bundled `library` does not know."""
    kept = closure.kept.get(library)
    if kept is None or not archs:
        return
    known = known_isas(kept.located.real)
    missing = [arch for arch in archs if arch not in known]
    if not missing:
        return
    package = sysroot.package(kept.located.tree)
    runtime = f"{package['name']} {package['version']}" if package else library
    arch = missing[0]
    newer = f"ROCm {FIRST_ROCM[arch]} or later runs it" if arch in FIRST_ROCM else "a newer ROCm runtime may run it"
    raise ClosureError(f"{arch} is not in the ISA table of the bundled {library} ({runtime}), so it would never "
                       f"find that GPU; {newer} (it knows {', '.join(sorted(known, key=_order))})")


def _order(isa: str) -> tuple[int, str]:
    return len(isa), isa
