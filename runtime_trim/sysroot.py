"""Unpacked package trees overlaid as one file system, as their packages would install together, and the
dynamic linker's search order inside it (ld.so(8)): RPATH of the object and its loaders unless the object
has RUNPATH, then the library path, then the object's own RUNPATH.

The library path here is each tree's system directories (`lib/<triplet>`, `usr/lib/<triplet>`, `lib`,
`usr/lib`), the same set `ld.so --library-path` is given when checking a closure. Nothing outside the
trees is ever looked at: absolute RPATH entries and symlink targets are taken relative to the trees.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kiln.runtime_trim.elf import ElfInfo
from kiln.toolchain.lockfile import ARTIFACT_FILE

TRIPLETS = {"EM_X86_64": "x86_64-linux-gnu", "EM_AARCH64": "aarch64-linux-gnu"}
_MAX_LINKS = 40  # ld.so's own limit on symlink hops


@dataclass(frozen=True)
class Located:
    rel: str  # path inside the trees that was asked for (may be a symlink)
    real: Path  # the regular file it leads to
    tree: Path  # the tree holding `real`


@dataclass(frozen=True)
class Node:
    """A loaded object: what it is, where it sits in the trees (None for a root outside them), who loaded it."""
    name: str
    info: ElfInfo
    rel: str | None
    loader: Node | None


class Sysroot:
    def __init__(self, trees: list[Path]):
        self.trees = [Path(t) for t in trees]

    def lookup(self, rel: str) -> Located | None:
        """The regular file at `rel` in the first tree that has it, following symlinks across the trees."""
        current = posixpath.normpath("/" + rel).lstrip("/")
        for _ in range(_MAX_LINKS):
            tree = next((t for t in self.trees if os.path.lexists(t / current)), None)
            if tree is None:
                return None
            path = tree / current
            if not path.is_symlink():
                return Located(rel, path, tree) if path.is_file() and _inside(path, tree) else None
            target = os.readlink(path)
            current = posixpath.normpath("/" + posixpath.join(posixpath.dirname(current), target)).lstrip("/")
        return None

    @cached_property
    def files(self) -> list[tuple[Path, str]]:
        """(tree, relative path) of every regular file and symlink, sorted; the trees' identity files excluded."""
        found = []
        for tree in self.trees:
            for directory, dirs, names in os.walk(tree):
                dirs.sort()
                for name in sorted(names):
                    rel = Path(directory, name).relative_to(tree).as_posix()
                    if rel != ARTIFACT_FILE:
                        found.append((tree, rel))
        return found

    def glob(self, pattern: str) -> list[str]:
        return sorted({rel for _, rel in self.files if fnmatch.fnmatchcase(rel, pattern)})

    def named(self, name: str) -> list[str]:
        return sorted({rel for _, rel in self.files if posixpath.basename(rel) == name})

    def package(self, tree: Path) -> dict:
        """The pinned artifact a tree was unpacked from ({} for a tree without an identity file)."""
        try:
            return json.loads((tree / ARTIFACT_FILE).read_text())
        except (OSError, ValueError):
            return {}


def library_path(info: ElfInfo) -> list[str]:
    triplet = TRIPLETS.get(info.machine)
    return ([f"lib/{triplet}", f"usr/lib/{triplet}"] if triplet else []) + ["lib", "usr/lib"]


def search_dirs(node: Node) -> list[str]:
    """Directories (relative to the trees) searched for a DT_NEEDED entry of `node`, in ld.so's order."""
    dirs: list[str] = []
    if not node.info.runpath:
        loader: Node | None = node
        while loader is not None:
            if not loader.info.runpath:
                dirs += _expand(loader.info.rpath, loader)
            loader = loader.loader
    return dirs + library_path(node.info) + _expand(node.info.runpath, node)


def _expand(entries: tuple[str, ...], node: Node) -> list[str]:
    dirs = []
    for entry in entries:
        uses_origin = "$ORIGIN" in entry or "${ORIGIN}" in entry
        if uses_origin and node.rel is None:
            continue  # a root outside the trees: its $ORIGIN holds no vendor files
        expanded = entry.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", "/" + posixpath.dirname(node.rel or ""))
        if "$" in expanded or not expanded.startswith("/"):
            continue  # $LIB/$PLATFORM or relative to the working directory: nothing inside the trees
        dirs.append(posixpath.normpath(expanded).lstrip("/"))
    return dirs


def _inside(path: Path, tree: Path) -> bool:
    return path.resolve().is_relative_to(tree.resolve())
