"""zig from the pinned `ziglang` wheel: the C compiler and linker for every host target."""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import metadata
from pathlib import Path

ZIG_TARGETS = {"linux-amd64": "x86_64-linux-gnu.2.28", "linux-arm64": "aarch64-linux-gnu.2.28"}


class ToolchainError(Exception):
    """The pinned toolchain is missing or broken."""


@functools.cache
def zig_home() -> Path:
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


def zig_target(host: str) -> str:
    return ZIG_TARGETS[host]
