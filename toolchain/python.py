"""The Python interpreter and kiln's own packages, as a hermetic tool for build actions."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

# Distributions whose code decides what the compiler writes.
_PINNED = ("llvmlite", "onnx", "numpy", "safetensors", "zstandard", "pyelftools")


def python_path() -> str:
    return sys.executable


def python_mounts() -> list[str]:
    """Directories the interpreter and kiln need to run inside a sandbox."""
    paths = {sys.prefix, sys.base_prefix, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths.update(os.fspath(p) for p in kiln_package_dirs())
    return sorted(paths)


def kiln_package_dirs() -> list[Path]:
    import kiln.compiler
    import kiln.runtime_trim
    import kiln.toolchain
    return [Path(m.__file__).parent for m in (kiln.compiler, kiln.toolchain, kiln.runtime_trim)]


@functools.cache
def python_digest() -> str:
    """Identity of the Python tool: interpreter version, pinned libraries, kiln's tool sources."""
    digest = hashlib.sha256(sys.version.encode())
    for name in _PINNED:
        try:
            digest.update(f"{name}=={metadata.version(name)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} missing\n".encode())
    for directory in kiln_package_dirs():
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(directory.parent).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()
