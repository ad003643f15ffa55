"""File digests with a stat cache: a file is re-hashed only when its size, mtime or inode change."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from kiln.build_rules.fsutil import atomic_write_bytes

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


class DigestCache:
    """Maps absolute paths to sha256, trusted only while the file's stat stamp is unchanged."""

    def __init__(self, index: Path):
        self._index = index
        self._lock = threading.Lock()
        self._entries: dict[str, list] = {}
        self._dirty = False
        try:
            self._entries = json.loads(index.read_bytes())
        except (OSError, ValueError):
            self._entries = {}

    def digest(self, path: Path | str) -> str:
        key = os.fspath(path)
        stamp = _stamp(os.stat(key))
        entry = self._entries.get(key)
        if entry and entry[0] == stamp:
            return entry[1]
        value = sha256_file(key)
        self.record(key, value, stamp)
        return value

    def record(self, path: Path | str, digest: str, stamp: list[int] | None = None) -> None:
        key = os.fspath(path)
        with self._lock:
            self._entries[key] = [stamp or _stamp(os.stat(key)), digest]
            self._dirty = True

    def known(self, path: Path | str) -> str | None:
        """The recorded digest if the file is unchanged since it was recorded, else None."""
        key = os.fspath(path)
        try:
            stamp = _stamp(os.stat(key))
        except OSError:
            return None
        entry = self._entries.get(key)
        return entry[1] if entry and entry[0] == stamp else None

    def forget(self, path: Path | str) -> None:
        with self._lock:
            self._entries.pop(os.fspath(path), None)

    def save(self) -> None:
        if not self._dirty:
            return
        live = {k: v for k, v in self._entries.items() if os.path.exists(k)}
        atomic_write_bytes(self._index, json.dumps(live, separators=(",", ":")).encode())
        self._dirty = False
