"""Keep a bundled library's glibc floor where its real needs put it, not at 2.38 for C23's sake.

Built against glibc 2.38 or later with C2X/GNU defaults, a library imports `__isoc23_strtol`,
`__isoc23_sscanf`, ... (GLIBC_2.38) where older builds import `strtol` and `__isoc99_sscanf`. Each
pair differs only in C23's additions (0b binary literals, scanf's %b), which the vendor runtimes kiln
bundles do not parse. `repoint` renames such imports to their pre-C23 names, bound at the version
glibc defines those at, and, when nothing else needs GLIBC_2.38, marks that version need weak, which
the dynamic linker does not enforce: so Debian trixie's ROCm runtime loads on a glibc 2.36 server."""

from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path

from elftools.elf.elffile import ELFFile

from kiln.runtime_trim.elf import VER_FLG_WEAK

C23_VERSION = "GLIBC_2.38"
_STRTO = ("strtol", "strtoul", "strtoll", "strtoull", "strtoimax", "strtoumax")
_SCANF = ("sscanf", "fscanf", "scanf", "vsscanf", "vfscanf", "vscanf")
# The pre-C23 import for each C23 one, and the glibc version it is defined at, per machine.
CLASSIC = {
    machine: {**{f"__isoc23_{n}": (n, base) for n in _STRTO},
              **{f"__isoc23_{n}": (f"__isoc99_{n}", isoc99) for n in _SCANF}}
    for machine, base, isoc99 in (("EM_X86_64", "GLIBC_2.2.5", "GLIBC_2.7"), ("EM_AARCH64", "GLIBC_2.17", "GLIBC_2.17"))
}


class RepointError(Exception):
    """The library's version tables are not what the rewrite expects."""


def repoint(path: Path, patchelf: str) -> list[str]:
    """Rewrites `path` in place; returns the C23 imports it re-pointed (none: the file is untouched).
    An import whose pre-C23 version the library does not already need stays as it is."""
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        classic = CLASSIC.get(elf["e_machine"], {})
        needs = _libc_needs(elf, "<" if elf.little_endian else ">")
        dynsym = elf.get_section_by_name(".dynsym")
        imports = {s.name for s in dynsym.iter_symbols()} if dynsym else set()
    plan = {name: classic[name] for name in sorted(imports & set(classic)) if classic[name][1] in needs}
    if not plan or C23_VERSION not in needs:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".map") as mapping:
        mapping.write("".join(f"{name} {new}\n" for name, (new, _) in plan.items()))
        mapping.flush()
        done = subprocess.run([patchelf, "--rename-dynamic-symbols", mapping.name, str(path)],
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RepointError(f"{path.name}: patchelf --rename-dynamic-symbols failed: {done.stderr.strip()}")
    _rebind(path, dict(plan.values()))
    return list(plan)


def _rebind(path: Path, versions: dict[str, str]) -> None:
    """Binds each renamed import (name -> version) that still carries GLIBC_2.38 to its version, and
    weakens the GLIBC_2.38 need once no import uses it."""
    with path.open("r+b") as handle:
        elf = ELFFile(handle)
        endian = "<" if elf.little_endian else ">"
        needs = _libc_needs(elf, endian)
        c23_index, c23_flags_at = needs[C23_VERSION]
        versym = elf.get_section_by_name(".gnu.version")
        dynsym = elf.get_section_by_name(".dynsym")
        indices = [_versym(handle, versym, i, endian) for i in range(dynsym.num_symbols())]
        for i, symbol in enumerate(dynsym.iter_symbols()):
            if symbol.name in versions and indices[i] == c23_index:
                indices[i] = needs[versions[symbol.name]][0]
                handle.seek(versym["sh_offset"] + 2 * i)
                handle.write(struct.pack(endian + "H", indices[i]))
        if c23_index not in indices:
            handle.seek(c23_flags_at)
            handle.write(struct.pack(endian + "H", VER_FLG_WEAK))


def _versym(handle, versym, i: int, endian: str) -> int:
    handle.seek(versym["sh_offset"] + 2 * i)
    return struct.unpack(endian + "H", handle.read(2))[0] & 0x7FFF


def _libc_needs(elf: ELFFile, endian: str) -> dict[str, tuple[int, int]]:
    """libc.so.6's version needs: name -> (version index, file offset of its flags)."""
    section = elf.get_section_by_name(".gnu.version_r")
    if section is None:
        return {}
    found, offset = {}, section["sh_offset"]
    for verneed, auxiliaries in section.iter_versions():
        aux_at = offset + verneed["vn_aux"]
        for aux in auxiliaries:
            if verneed.name == "libc.so.6":
                found[aux.name] = (aux["vna_other"], aux_at + 4)  # vna_hash (4 bytes), then vna_flags
            aux_at += aux["vna_next"]
        offset += verneed["vn_next"]
    return found
