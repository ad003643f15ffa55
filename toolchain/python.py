"""The Python interpreter and kiln's own packages, as hermetic tools for build actions."""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

# Distributions whose code decides what kiln's Python tools write.
_PINNED = ("llvmlite", "onnx", "numpy", "safetensors", "zstandard", "pyelftools")
_KILN_PACKAGES = ("kiln.build_rules", "kiln.compiler", "kiln.toolchain", "kiln.runtime_trim")


def python_path() -> str:
    return sys.executable


def package_dir(package: str) -> Path:
    return Path(importlib.import_module(package).__file__).parent


def python_mounts() -> list[str]:
    """Directories the interpreter and kiln's packages need to run inside a sandbox."""
    paths = {sys.prefix, sys.base_prefix, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths.update(os.fspath(package_dir(p)) for p in _KILN_PACKAGES)
    return sorted(paths)


@functools.cache
def python_digest(*packages: str) -> str:
    """Identity of a Python tool: interpreter, pinned libraries, and the sources of `packages`."""
    digest = hashlib.sha256(sys.version.encode())
    for name in _PINNED:
        try:
            digest.update(f"{name}=={metadata.version(name)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} missing\n".encode())
    for package in packages:
        directory = package_dir(package)
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{package}/{path.relative_to(directory).as_posix()}\0".encode() + path.read_bytes())
    return digest.hexdigest()
