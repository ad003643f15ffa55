"""ptxas from the pinned nvidia-cuda-nvcc-cu12 wheel: PTX -> cubin for one SM, with the register and
spill figures `ptxas -v` reports per kernel.

CUDA 12, not 13: a ptxas 13.x cubin has the CUDA 13 cubin format (ELF OS/ABI 0x41, ABI version 8) that
only drivers >= R580 load, while a CUDA 12 one loads on every R525+ driver that fleets still run."""
from __future__ import annotations

import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

from kiln.toolchain.errors import FetchError
from kiln.toolchain.fetch import ensure

PIN = "nvidia-cuda-nvcc-cu12"
IN_WHEEL = "nvidia/cuda_nvcc/bin/ptxas"  # where the pinned wheel keeps ptxas
_FUNC = re.compile(r"Compiling entry function '(\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_RELEASE = re.compile(r"release (\d+)\.(\d+)")


class PtxasError(Exception):
    """ptxas rejected the PTX; the message is its own."""


def ptxas_path(arch: str | None = None) -> Path:
    """KILN_PTXAS if set (a sandboxed action passes its declared tool), else the pinned wheel's."""
    if os.environ.get("KILN_PTXAS"):
        return Path(os.environ["KILN_PTXAS"])
    arch = arch or {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    found = sorted(ensure(PIN, arch).glob("nvidia/*/bin/ptxas"))
    if not found:
        raise FetchError(f"the pinned {PIN} wheel holds no bin/ptxas")
    return found[-1]


def assemble(ptx: str, sm: str, ptxas: Path | None = None) -> tuple[bytes, dict[str, dict]]:
    """(cubin, {kernel: {registers, stack_bytes, spill_store_bytes, spill_load_bytes}})."""
    with tempfile.TemporaryDirectory(prefix="kiln-ptxas-") as tmp:
        src, out = Path(tmp) / "k.ptx", Path(tmp) / "k.cubin"
        src.write_text(ptx)
        r = subprocess.run([os.fspath(ptxas or ptxas_path()), f"-arch={sm}", "-v", "-O3", "-o", os.fspath(out),
                            os.fspath(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise PtxasError(f"ptxas -arch={sm} failed: {(r.stderr or r.stdout).strip()}")
        return out.read_bytes(), parse_verbose(r.stdout + r.stderr)


def release(ptxas: Path | None = None) -> tuple[int, int]:
    """The CUDA release ptxas belongs to, as `ptxas --version` says it: (12, 9)."""
    r = subprocess.run([os.fspath(ptxas or ptxas_path()), "--version"], capture_output=True, text=True)
    m = _RELEASE.search(r.stdout)
    if r.returncode != 0 or m is None:
        raise PtxasError(f"ptxas --version gave no CUDA release: {(r.stderr or r.stdout).strip()}")
    return int(m.group(1)), int(m.group(2))


def parse_verbose(text: str) -> dict[str, dict]:
    stats: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if m := _FUNC.search(line):
            current = stats.setdefault(m.group(1), {"registers": 0, "stack_bytes": 0,
                                                     "spill_store_bytes": 0, "spill_load_bytes": 0})
        elif current is not None and (m := _FRAME.search(line)):
            current.update(stack_bytes=int(m.group(1)), spill_store_bytes=int(m.group(2)),
                           spill_load_bytes=int(m.group(3)))
        elif current is not None and (m := _USED.search(line)):
            current["registers"] = int(m.group(1))
    return stats
