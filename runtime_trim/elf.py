"""What the dynamic linker reads from an ELF file: class, machine, type, SONAME, DT_NEEDED, RPATH/RUNPATH,
version needs (GLIBC_2.34, GLIBCXX_3.4.30) and exported symbols, via pyelftools.

Any file that is not a well-formed ELF object raises ElfError naming the file; the reader checks
offsets and counts against the file size first, so crafted input cannot make it loop or allocate
without bound.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

ELF_MAGIC = b"\x7fELF"
VER_FLG_WEAK = 0x2  # a Vernaux flag: the version need is not enforced


class ElfError(Exception):
    """A file is not a readable ELF object; the message names the file."""


@dataclass(frozen=True)
class ElfInfo:
    path: Path
    elfclass: int  # 32 | 64
    machine: str  # EM_X86_64, EM_AARCH64, ...
    type: str  # ET_DYN, ET_EXEC, ...
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    version_needs: dict[str, tuple[str, ...]]  # needed file -> version names, e.g. libc.so.6 -> (GLIBC_2.34,)
    version_defs: frozenset[str] = frozenset()  # the versions it defines, e.g. GLIBCXX_3.4.32

    def compatible(self, other: ElfInfo) -> bool:
        """Whether the dynamic linker would load `other` into the same process."""
        return (self.elfclass, self.machine) == (other.elfclass, other.machine)


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == ELF_MAGIC
    except OSError:
        return False


def read_elf(path: Path) -> ElfInfo:
    """Parse the dynamic-linking facts of `path`; raises ElfError for anything else."""
    return _guarded(path, _info)


def exported_symbols(path: Path) -> frozenset[str]:
    """Names of the defined global and weak dynamic symbols of `path`."""
    return _guarded(path, _exports)


def _guarded(path: Path, parse):
    try:
        with path.open("rb") as handle:
            if handle.read(4) != ELF_MAGIC:
                raise ElfError(f"{path}: not an ELF file")
            handle.seek(0)
            elf = ELFFile(handle)
            _check_bounds(path, elf, os.fstat(handle.fileno()).st_size)
            return parse(path, elf)
    except ElfError:
        raise
    except OSError as e:
        raise ElfError(f"{path}: cannot read: {e.strerror or e}") from None
    except Exception as e:  # pyelftools signals malformed input with many exception types
        raise ElfError(f"{path}: malformed ELF ({type(e).__name__}: {e})") from None


def _check_bounds(path: Path, elf: ELFFile, size: int) -> None:
    for section in elf.iter_sections():
        if section["sh_type"] != "SHT_NOBITS" and section["sh_offset"] + section["sh_size"] > size:
            raise ElfError(f"{path}: section {section.name or '?'} extends past the end of the file (truncated?)")
    for segment in elf.iter_segments():
        if segment["p_offset"] + segment["p_filesz"] > size:
            raise ElfError(f"{path}: segment {segment['p_type']} extends past the end of the file (truncated?)")


def _info(path: Path, elf: ELFFile) -> ElfInfo:
    tags: dict[str, list[str]] = {"DT_NEEDED": [], "DT_SONAME": [], "DT_RPATH": [], "DT_RUNPATH": []}
    for tag in _dynamic_tags(elf):
        if tag.entry.d_tag in tags:
            tags[tag.entry.d_tag].append(_tag_string(tag))
    return ElfInfo(path=path, elfclass=elf.elfclass, machine=elf["e_machine"], type=elf["e_type"],
                   soname=tags["DT_SONAME"][0] if tags["DT_SONAME"] else None,
                   needed=tuple(tags["DT_NEEDED"]),
                   rpath=tuple(p for value in tags["DT_RPATH"] for p in value.split(":") if p),
                   runpath=tuple(p for value in tags["DT_RUNPATH"] for p in value.split(":") if p),
                   version_needs=_version_needs(elf), version_defs=_version_defs(elf))


def _version_defs(elf: ELFFile) -> frozenset[str]:
    section = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_GNU_verdef"), None)
    if section is None:
        return frozenset()
    return frozenset(aux.name for verdef, auxiliaries in section.iter_versions() for aux in list(auxiliaries)[:1])


def _dynamic_tags(elf: ELFFile):
    dynamic = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_DYNAMIC"), None)
    if dynamic is None:
        dynamic = next((s for s in elf.iter_segments() if s["p_type"] == "PT_DYNAMIC"), None)
    if dynamic is None:
        return
    size = dynamic["sh_size"] if "sh_size" in dynamic.header else dynamic["p_filesz"]
    budget = size // (16 if elf.elfclass == 64 else 8)
    for count, tag in enumerate(dynamic.iter_tags()):
        if count >= budget:
            raise ValueError("dynamic section has no DT_NULL terminator")
        yield tag


def _tag_string(tag) -> str:
    value = {"DT_NEEDED": "needed", "DT_SONAME": "soname", "DT_RPATH": "rpath", "DT_RUNPATH": "runpath"}
    return getattr(tag, value[tag.entry.d_tag])


def _version_needs(elf: ELFFile) -> dict[str, tuple[str, ...]]:
    section = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_GNU_verneed"), None)
    if section is None:
        return {}
    budget = section["sh_size"] // 16  # every Verneed and Vernaux record is 16 bytes
    needs: dict[str, tuple[str, ...]] = {}
    for verneed, auxiliaries in section.iter_versions():
        names = []
        for record in (verneed, *auxiliaries):
            budget -= 1
            if budget < 0:
                raise ValueError("version needs run past their section")
            names.append(record.name if record is verneed or not record["vna_flags"] & VER_FLG_WEAK else None)
        names.pop(0)  # the Verneed record itself names the file, not a version
        # weak needs are not enforced by the dynamic linker
        needs[verneed.name] = needs.get(verneed.name, ()) + tuple(n for n in names if n is not None)
    return needs


def _exports(path: Path, elf: ELFFile) -> frozenset[str]:
    dynsym = next((s for s in elf.iter_sections() if isinstance(s, SymbolTableSection)
                   and s["sh_type"] == "SHT_DYNSYM"), None)
    if dynsym is None:
        return frozenset()
    return frozenset(symbol.name for symbol in dynsym.iter_symbols()
                     if symbol["st_shndx"] != "SHN_UNDEF" and symbol.name
                     and symbol["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK"))
