"""The ELF reader: facts of real shared objects built here with zig, and no crash on any malformed input."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.runtime_trim.elf import ElfError, exported_symbols, read_elf

TARGET = "x86_64-linux-gnu.2.28"


def zig_shared(directory: Path, name: str, source: str, *flags: str) -> Path:
    """Compile `source` (C) into directory/name as a shared library with zig."""
    c_file = directory / f"{name}.c"
    c_file.write_text(source)
    output = directory / name
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", TARGET, "-shared", "-fPIC", "-o", str(output),
                    str(c_file), *flags], check=True, capture_output=True)
    return output


@pytest.fixture(scope="module")
def libs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("elf")
    base = zig_shared(d, "libbase.so.2", "int base_value(void) { return 2; }", "-Wl,-soname,libbase.so.2")
    top = zig_shared(d, "libtop.so.1", "#include <math.h>\nint base_value(void);\n"
                     "double top_value(double x) { return sqrt(x) + base_value(); }\n"
                     "static int hidden(void) { return 0; }\nint (*keep)(void) = hidden;\n",
                     "-Wl,-soname,libtop.so.1", f"-L{d}", "-l:libbase.so.2", "-lm", "-Wl,-rpath,$ORIGIN/../lib:/opt/x")
    old = zig_shared(d, "libold.so", "int old(void) { return 1; }", "-Wl,--disable-new-dtags", "-Wl,-rpath,/legacy")
    return {"base": base, "top": top, "old": old}


def test_reads_dynamic_facts(libs):
    top = read_elf(libs["top"])
    assert (top.elfclass, top.machine, top.type) == (64, "EM_X86_64", "ET_DYN")
    assert top.soname == "libtop.so.1"
    assert "libbase.so.2" in top.needed and "libm.so.6" in top.needed
    assert top.runpath == ("$ORIGIN/../lib", "/opt/x") and top.rpath == ()
    assert any(v.startswith("GLIBC_2.") for v in top.version_needs["libm.so.6"])


def test_rpath_is_not_runpath(libs):
    old = read_elf(libs["old"])
    assert old.rpath == ("/legacy",) and old.runpath == () and old.soname is None


def test_exported_symbols(libs):
    exports = exported_symbols(libs["top"])
    assert "top_value" in exports and "keep" in exports
    assert "hidden" not in exports and "base_value" not in exports  # static, and undefined here


def test_non_elf_and_missing_files_name_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ElfError, match="notes.txt: not an ELF file"):
        read_elf(text)
    with pytest.raises(ElfError, match="absent.so: cannot read"):
        read_elf(tmp_path / "absent.so")


def test_truncated_elf_is_an_error(libs, tmp_path):
    blob = libs["top"].read_bytes()
    cut = tmp_path / "cut.so"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ElfError, match="cut.so"):
        read_elf(cut)


def _mutations(blob: bytes, rng: random.Random):
    yield bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))  # noise
    yield b"\x7fELF" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 4000)))  # noise with the magic
    yield blob[: rng.randrange(len(blob))]  # truncated
    flipped = bytearray(blob)
    for _ in range(rng.randrange(1, 16)):  # bit flips, mostly in the headers where they bite
        position = rng.randrange(256) if rng.random() < 0.6 else rng.randrange(len(blob))
        flipped[position] ^= 1 << rng.randrange(8)
    yield bytes(flipped)


def test_fuzz_reader_never_crashes(libs, tmp_path):
    rng = random.Random(20240605)
    blob = libs["top"].read_bytes()
    target = tmp_path / "fuzz.so"
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(150):
        for data in _mutations(blob, rng):
            target.write_bytes(data)
            for reader in (read_elf, exported_symbols):
                try:
                    reader(target)
                    outcomes["parsed"] += 1
                except ElfError as e:
                    assert "fuzz.so" in str(e)
                    outcomes["rejected"] += 1
    assert outcomes["parsed"] and outcomes["rejected"]
