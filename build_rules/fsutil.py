"""Atomic file writes through kiln.toolchain.fsio, copies that share no inode with their source, tree removal."""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

from kiln.toolchain.fsio import atomic_path, atomic_write


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    atomic_write(path, data, mode)


def atomic_copy(source: Path, path: Path, mode: int = 0o644) -> None:
    with atomic_path(path, mode) as tmp:
        shutil.copyfile(source, tmp)


_FICLONE = 0x40049409  # linux/fs.h: share the source's extents copy-on-write (btrfs, XFS)


def clone_file(source: Path, target: Path) -> None:
    """A copy of `source` that shares no inode with it: a reflink where the filesystem has them.

    Store blobs are never hard-linked out: writing through a link would change the store."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except OSError:
            shutil.copyfileobj(src, dst, length=1 << 20)


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
