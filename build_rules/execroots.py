"""Execution roots under `<cache>/sandbox/`: each held by a lock while its action runs, so that the
next build can remove those a killed kiln left behind without touching a concurrent build's."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def execroot(root: Path, mnemonic: str) -> Iterator[Path]:
    """A fresh, empty execution root, removed afterwards; its lock is taken before it exists."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{mnemonic}.{uuid.uuid4().hex[:12]}"
    lock = Path(f"{path}.lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            lock.unlink(missing_ok=True)


def remove_stale(root: Path) -> int:
    """Remove the execution roots no live kiln holds (left by a killed build); how many went."""
    if not root.is_dir():
        return 0
    removed = 0
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        lock = Path(f"{path}.lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            fd = None  # its kiln died before taking the lock, or an older kiln made it
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a running build's
        shutil.rmtree(path, ignore_errors=True)
        lock.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)
        removed += 1
    for lock in root.glob("*.lock"):  # locks whose directory is gone
        if not Path(str(lock)[: -len(".lock")]).exists():
            with contextlib.suppress(BlockingIOError, FileNotFoundError), open(lock, "r") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock.unlink(missing_ok=True)
    return removed
