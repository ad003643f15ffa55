"""Deterministic tar streams: sorted entries, mtime 0, uid/gid 0, no user names, fixed modes."""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True, order=True)
class Entry:
    name: str  # path inside the archive, no leading slash
    source: Path | None = None  # None: a directory, or a symlink when `link` is set
    executable: bool = False
    link: str | None = None  # symlink target, as it will be written
    offset: int = 0  # a file entry may hold only part of its source: `size` bytes from `offset`
    size: int | None = None  # None: to the end of the source


def with_parents(entries: list[Entry]) -> list[Entry]:
    """Add an entry for every directory a file sits in, then sort."""
    names = {e.name for e in entries}
    directories = {}
    for entry in entries:
        parts = entry.name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory not in names:
                directories[directory] = Entry(directory)
    return sorted([*entries, *directories.values()])


def expand(entry: Entry) -> list[Entry]:
    """A directory source (a tree output: a trimmed runtime) stands for every file under it."""
    if entry.source is None or not entry.source.is_dir():
        return [entry]
    return [Entry(f"{entry.name}/{path.relative_to(entry.source).as_posix()}", path, os.access(path, os.X_OK))
            for path in sorted(entry.source.rglob("*")) if path.is_file()]


def write_tar(entries: list[Entry], out: BinaryIO) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in with_parents([e for entry in entries for e in expand(entry)]):
            info = tarfile.TarInfo(entry.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if entry.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link, 0o777
                tar.addfile(info)
            elif entry.source is None:
                info.name, info.type, info.mode = entry.name + "/", tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = entry.source.stat().st_size - entry.offset if entry.size is None else entry.size
                info.mode = 0o755 if entry.executable else 0o644
                with entry.source.open("rb") as data:
                    data.seek(entry.offset)
                    tar.addfile(info, data)
