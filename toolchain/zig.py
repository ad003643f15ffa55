"""zig from the pinned `ziglang` wheel: the C compiler and linker for every host target."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Iterator

ZIG_TARGETS = {"linux-amd64": "x86_64-linux-gnu.2.28", "linux-arm64": "aarch64-linux-gnu.2.28"}


# The zig an action was handed as a tool (`--zig PATH`), taken ahead of the ziglang package: a remote
# worker's Python has no ziglang, and the zig tree comes in the action's input root instead.
HANDED_ZIG = "KILN_ZIG"


class ToolchainError(Exception):
    """The pinned toolchain is missing or broken."""


@functools.cache
def zig_home() -> Path:
    if handed := os.environ.get(HANDED_ZIG):
        home = Path(handed).parent
    else:
        try:
            import ziglang
        except ImportError:
            raise ToolchainError("the ziglang package is not installed (pip install ziglang==0.17.1)") from None
        home = Path(ziglang.__file__).parent
    if not (home / "zig").is_file():
        raise ToolchainError(f"the ziglang package at {home} has no zig binary")
    return home


def zig_path() -> str:
    return os.fspath(zig_home() / "zig")


@functools.cache
def zig_digest() -> str:
    """Identity of the zig distribution: its version and the sha256 of its wheel RECORD."""
    dist = metadata.distribution("ziglang")
    record = dist.read_text("RECORD") or ""
    return hashlib.sha256(f"ziglang=={dist.version}\n{record}".encode()).hexdigest()


def zig_cache_dir(cache_root: Path) -> str:
    """zig's own content-addressed cache, kept between actions (first compile for a target ~4 s, then ~0.02 s)."""
    return os.fspath(cache_root / "zig-cache")


# The flags kiln's own links use that decide which libc and compiler-rt builds zig needs.
_WARM_FLAGS = ("-O2", "-Wl,--strip-debug")


def warm_cache(cache: Path, target: str) -> None:
    """Build zig's libc start files and stubs and compiler-rt for `target` into `cache`, once.

    kiln runs this itself, outside any action: actions only ever get a copy of the cache, so a
    BUILD file's flags cannot replace a crt1.o that every later link would use.
    """
    marker = cache / "kiln-warm" / target
    if marker.exists():
        return
    with cache_lock(cache, exclusive=True):
        if marker.exists():  # another kiln warmed it while we waited
            return
        with tempfile.TemporaryDirectory(prefix="kiln-zig-warm-") as tmp:
            source = Path(tmp) / "warm.c"
            source.write_text("int main(void) { return 0; }\n")
            env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": os.fspath(cache), "ZIG_LOCAL_CACHE_DIR": f"{tmp}/local"}
            argv = [zig_path(), "cc", "-target", target, *_WARM_FLAGS, "-o", f"{tmp}/warm", os.fspath(source),
                    "-lpthread", "-lm", "-ldl"]
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise ToolchainError(f"zig could not build its libc for {target}: {done.stderr.strip()}")
        marker.touch()


@contextlib.contextmanager
def cache_lock(cache: Path, exclusive: bool) -> Iterator[None]:
    """Held exclusively while kiln warms the cache, shared while an action's copy is taken."""
    (cache / "kiln-warm").mkdir(parents=True, exist_ok=True)
    with open(cache / "kiln-warm" / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


# zig's libc header sets that `zig cc -target` reads for the glibc targets above, besides the generic ones.
_LIBC_INCLUDES = ("generic-glibc", "any-linux-any", "x86-linux-any", "x86-linux-gnu", "aarch64-linux-any",
                  "aarch64-linux-gnu")
# What kiln's C builds never read: other systems' libcs, the C++ and sanitizer runtimes, docs, debugger scripts.
_UNUSED = ("lib/libc/mingw", "lib/libc/musl", "lib/libc/wasi", "lib/libc/darwin", "lib/libc/freebsd",
           "lib/libc/netbsd", "lib/libc/openbsd", "lib/libcxx", "lib/libcxxabi", "lib/libtsan", "lib/docs",
           "lib/lldb", "lib/build-web", "lib/init")


def needed_for_targets(path: str) -> bool:
    """Whether the file at `path` (relative to zig's home) can be read by a compile or link for
    ZIG_TARGETS: what a remote worker gets of zig (about a third of the installed tree)."""
    if any(path == unused or path.startswith(f"{unused}/") for unused in _UNUSED):
        return False
    parts = path.split("/")
    return parts[:3] != ["lib", "libc", "include"] or len(parts) > 3 and parts[3] in _LIBC_INCLUDES


def zig_target(host: str) -> str:
    return ZIG_TARGETS[host]
