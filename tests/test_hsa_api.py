"""kiln's own HSA declarations (compiler/runtime/hsa_api.h: the launcher dlopens the bundled ROCm
runtime and needs no vendor header to build) against the vendor's data: every constant and struct
layout against the pinned ROCm headers (libhsa-runtime-dev, compiled by zig), every function the
launcher looks up against the symbols the pinned runtime .so exports."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from kiln.compiler.launcher import RUNTIME_DIR
from kiln.toolchain.fetch import ensure
from kiln.toolchain.zig import zig_path

pytestmark = pytest.mark.e2e
API = (RUNTIME_DIR / "hsa_api.h").read_text()
FIELDS = {
    "hsa_queue_t": ["type", "features", "base_address", "doorbell_signal", "size", "id"],
    "hsa_kernel_dispatch_packet_t": ["header", "setup", "workgroup_size_x", "workgroup_size_z", "grid_size_x",
                                     "grid_size_z", "private_segment_size", "group_segment_size", "kernel_object",
                                     "kernarg_address", "completion_signal"],
}


def constants() -> list[str]:
    block = API[API.index("enum {"):]
    return re.findall(r"^\s+(HSA_\w+) = ", block[:block.index("};")], re.M)


def functions() -> list[str]:
    return re.findall(r"X\((?:\w+, )?(hsa_\w+), \(", API)


def layout_program(include: str) -> str:
    """C that prints every constant's value and each struct's size and field offsets."""
    lines = [include, "#include <stddef.h>", "#include <stdio.h>", "int main(void) {"]
    lines += [f'    printf("{name} %lld\\n", (long long){name});' for name in constants()]
    for struct, fields in FIELDS.items():
        lines.append(f'    printf("sizeof({struct}) %zu\\n", sizeof({struct}));')
        lines += [f'    printf("{struct}.{f} %zu\\n", offsetof({struct}, {f}));' for f in fields]
    return "\n".join([*lines, "    return 0;", "}"])


def run_program(source: str, tmp: Path, *flags: str) -> dict[str, str]:
    c, exe = tmp / "layout.c", tmp / "layout"
    c.write_text(source)
    subprocess.run([zig_path(), "cc", "-target", "x86_64-linux-gnu", *flags, "-o", os.fspath(exe), os.fspath(c)],
                   check=True, capture_output=True)
    out = subprocess.run([os.fspath(exe)], check=True, capture_output=True, text=True).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_constants_and_structs_match_the_rocm_headers(tmp_path):
    headers = ensure("libhsa-runtime-dev", "amd64") / "usr" / "include"
    ours = run_program(layout_program('#include "hsa_api.h"'), tmp_path, "-I", os.fspath(RUNTIME_DIR))
    vendor = run_program(layout_program("#include <hsa/hsa.h>\n#include <hsa/hsa_ext_amd.h>"), tmp_path,
                         "-I", os.fspath(headers))
    assert len(ours) == len(constants()) + sum(len(f) + 1 for f in FIELDS.values())
    assert ours == vendor


def test_every_function_the_launcher_looks_up_is_in_the_runtime():
    runtime = ensure("libhsa-runtime64-1", "amd64")
    library = next(runtime.rglob("libhsa-runtime64.so.1"))
    with library.open("rb") as f:
        exported = {s.name for s in ELFFile(f).get_section_by_name(".dynsym").iter_symbols()
                    if s["st_shndx"] != "SHN_UNDEF"}
    wanted = functions()
    assert len(wanted) == 29
    assert sorted(set(wanted) - exported) == []
    headers = ensure("libhsa-runtime-dev", "amd64") / "usr" / "include" / "hsa"
    declared = (headers / "hsa.h").read_text() + (headers / "hsa_ext_amd.h").read_text()
    assert [name for name in wanted if not re.search(rf"\b{name}\s*\(", declared)] == []
