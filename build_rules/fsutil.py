"""Atomic file writes through kiln.toolchain.fsio, plus tree removal."""

from __future__ import annotations

import shutil
from pathlib import Path

from kiln.toolchain.fsio import atomic_path, atomic_write


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    atomic_write(path, data, mode)


def atomic_copy(source: Path, path: Path, mode: int = 0o644) -> None:
    with atomic_path(path, mode) as tmp:
        shutil.copyfile(source, tmp)


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
