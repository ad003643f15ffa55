"""The launcher: the C program (runtime/) a compiled model object is linked into.

The build rules link one launcher per model and host with zig:

    argv = launcher.link_argv(zig, "linux-amd64", ["model.o"], "mnist")

or, when the runtime sources are staged somewhere else (a sandbox's exec root):

    [zig, *launcher.link_flags(host, "_kiln/runtime"), *launcher.SERVER_DEFINES, "-isystem",
     f"{tree}/{launcher.SERVER_INCLUDE}", "-o", out, *staged_c_files, f"{tree}/{launcher.SERVER_SOURCE}",
     "model.o", *launcher.link_libraries()]

The HTTP server behind `serve` is civetweb, compiled from the upstream source the lock pins
(`server_tree()` fetches it; `tree` above is that) in the same zig command as the runtime.

The command line is deterministic: the same inputs give a byte-identical executable
from any working directory (no debug info, no build id, source paths mapped).
The executable is dynamic against glibc 2.28, so it runs on any server with a newer glibc.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kiln.toolchain.zig import zig_target

__all__ = [
    "RUNTIME_DIR", "SERVER_DEFINES", "SERVER_INCLUDE", "SERVER_PIN", "SERVER_SOURCE", "asan_runtime", "link_argv",
    "link_flags", "link_libraries", "runtime_files", "runtime_sources", "server_tree", "zig_target",
]

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"

# Paths in the few places the compiler might still record one (assertion text,
# sanitizer reports) read the same wherever the sources live.
_MAPPED_RUNTIME_DIR = "kiln/runtime"

SERVER_PIN = "civetweb"  # toolchain/lock.toml
# Inside the pinned tree (the upstream tarball's top folder names the version: move these with the pin).
SERVER_SOURCE = "civetweb-1.15/src/civetweb.c"
SERVER_INCLUDE = "civetweb-1.15/include"
# HTTP only: no TLS, CGI, file serving or caching; kiln answers every URI itself. A fixed BUILD_DATE
# keeps __DATE__ (not reproducible) out of the executable.
SERVER_DEFINES = ["-DNO_SSL", "-DNO_CGI", "-DNO_FILES", "-DNO_CACHING", "-DUSE_IPV6", '-DBUILD_DATE="kiln"']

_DETERMINISTIC = ["-std=c11", "-O2", "-g0", "-Wl,--build-id=none"]
# zig's cached libc start files carry DWARF naming the directory zig was first run from.
_STRIP_DEBUG = ["-Wl,--strip-debug"]
_WARNINGS = ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
# zig 0.17 ships UBSan's runtime but not ASan's, and reads "-fsanitize=address,undefined"
# as UBSan alone: the two flags go separately and ASan's runtime comes from the system.
_SANITIZE = ["-fsanitize=address", "-fsanitize=undefined", "-fno-sanitize-recover=all",
             "-fno-omit-frame-pointer", "-O1", "-g"]


def runtime_files() -> list[Path]:
    """Every runtime file a link needs (.c and .h), sorted."""
    return sorted(p for p in RUNTIME_DIR.iterdir() if p.suffix in (".c", ".h"))


def runtime_sources() -> list[Path]:
    """The runtime's .c files, sorted."""
    return [p for p in runtime_files() if p.suffix == ".c"]


def server_tree() -> Path:
    """civetweb's unpacked upstream source, fetched on first use."""
    from kiln.toolchain import fetch
    return fetch.ensure(SERVER_PIN, "all")


def link_flags(host: str, runtime_dir: str | os.PathLike[str], sanitize: bool = False) -> list[str]:
    """zig arguments up to the sources: `cc`, target, C standard, determinism and include flags.

    `runtime_dir` is where the runtime's headers are as the compiler sees them.
    """
    flags = ["cc", "-target", zig_target(host), *_DETERMINISTIC, *_WARNINGS,
             f"-ffile-prefix-map={os.fspath(runtime_dir)}={_MAPPED_RUNTIME_DIR}", "-I", os.fspath(runtime_dir)]
    return flags + (_SANITIZE if sanitize else _STRIP_DEBUG)


def link_libraries(sanitize: bool = False) -> list[str]:
    """Libraries after the sources and objects (pthread, libm and libdl exist apart from libc in glibc 2.28)."""
    libraries = ["-lpthread", "-lm", "-ldl"]
    if sanitize:
        runtime = asan_runtime()
        if runtime is None:
            raise RuntimeError("sanitize=True needs ASan's runtime (libasan.so from GCC); none found")
        libraries.append(os.fspath(runtime))
    return libraries


def link_argv(zig: str, host: str, objects: list[str], output: str, sanitize: bool = False) -> list[str]:
    """The full zig command that compiles the runtime and links it with the model objects into `output`.

    `objects` are model objects (.o), or C files implementing kiln_model.h (tests).
    sanitize=True builds with ASan and UBSan for the machine's own target (testing only).
    """
    sources = [os.fspath(p) for p in runtime_sources()]
    tree = server_tree()
    return [zig, *link_flags(host, RUNTIME_DIR, sanitize), *SERVER_DEFINES, "-isystem", f"{tree}/{SERVER_INCLUDE}",
            "-o", output, *sources, f"{tree}/{SERVER_SOURCE}", *objects, *link_libraries(sanitize)]


def asan_runtime() -> Path | None:
    """The system's shared ASan runtime (GCC's libasan), or None."""
    try:
        found = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(found)
    return path.resolve() if path.is_absolute() and path.exists() else None
