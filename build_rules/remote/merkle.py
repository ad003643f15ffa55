"""Files as REAPI Merkle trees: `Directory` messages addressed by digest, and `Tree` messages.

An action's input root and an output directory are both a map of relative path -> file; a
directory's digest is the sha256 of its deterministic encoding, with entries sorted by name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

from kiln.build_rules.remote.protos import Digest, Directory, Tree


@dataclass(frozen=True)
class FileNode:
    digest: str
    size: int
    executable: bool


@dataclass(frozen=True)
class LinkNode:
    """A symbolic link of an input root (a shared library's SONAME link in a pinned tree)."""

    target: str


def digest_of(data: bytes) -> Digest:
    return Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def input_root(files: dict[str, FileNode | LinkNode], empty_dirs: Iterable[str] = ()) -> tuple[Digest, dict[str, bytes]]:
    """The root directory's digest and every encoded `Directory` of the tree, by hash."""
    blobs: dict[str, bytes] = {}
    root = _directory(_nest(files, empty_dirs), blobs, [])
    encoded = root.SerializeToString(deterministic=True)
    digest = digest_of(encoded)
    blobs[digest.hash] = encoded
    return digest, blobs


def tree(files: dict[str, FileNode]) -> Tree:
    """An output directory as one `Tree` message: its root and every directory below it."""
    children: list[Directory] = []
    root = _directory(_nest(files, ()), {}, children)
    return Tree(root=root, children=children)


def tree_files(message: Tree) -> dict[str, FileNode]:
    """The files of a `Tree`, by path relative to its root."""
    by_digest = {digest_of(c.SerializeToString(deterministic=True)).hash: c for c in message.children}
    files: dict[str, FileNode] = {}

    def walk(directory: Directory, prefix: str) -> None:
        for f in directory.files:
            files[prefix + _checked(f.name)] = FileNode(checked_hash(f.digest.hash), f.digest.size_bytes, f.is_executable)
        for d in directory.directories:
            if d.digest.hash not in by_digest:
                raise ValueError(f"the tree lacks directory {prefix}{d.name}")
            walk(by_digest[d.digest.hash], f"{prefix}{_checked(d.name)}/")

    walk(message.root, "")
    return files


def checked_hash(digest: str) -> str:
    """A sha256 from the remote, before it names a path in the local store."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"invalid sha256 {digest[:80]!r}")
    return digest


def _checked(name: str) -> str:
    """A name from the remote must stay inside its directory."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid name {name!r} in a tree")
    return name


def _nest(files: dict[str, FileNode | LinkNode], empty_dirs: Iterable[str]) -> dict:
    root: dict = {}
    for directory in empty_dirs:
        node = root
        for part in directory.split("/"):
            node = node.setdefault(part, {})
    for path, file in files.items():
        *parents, name = path.split("/")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = file
    return root


def _directory(node: dict, blobs: dict[str, bytes], children: list[Directory]) -> Directory:
    directory = Directory()
    for name in sorted(node):
        entry = node[name]
        if isinstance(entry, LinkNode):
            directory.symlinks.add(name=name, target=entry.target)
            continue
        if isinstance(entry, FileNode):
            directory.files.add(name=name, digest=Digest(hash=entry.digest, size_bytes=entry.size),
                                is_executable=entry.executable)
            continue
        child = _directory(entry, blobs, children)
        encoded = child.SerializeToString(deterministic=True)
        digest = digest_of(encoded)
        blobs[digest.hash] = encoded
        children.append(child)
        directory.directories.add(name=name, digest=digest)
    return directory
