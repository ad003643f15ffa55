"""Tools inside a remote action's input root, so that a worker needs no install of its own.

Locally an action runs a tool where it is installed (`Tool.path`, shown by the sandbox's mounts). A
worker has none of those paths: each tool becomes a content-named directory `_tools/<name>-<id>/` of
the input root, and the argument naming the tool becomes its program's path there, relative to the
execution root (the worker's working directory). The pinned external trees are their one directory
as installed; zig is its directory less what kiln's targets never read (toolchain.zig.needed_for_targets,
237 of 373 MB kept); Python is a relocatable tree (toolchain.python.relocatable_files) holding the
interpreter, libpython and the system libraries its standard library links, each with a RUNPATH
relative to itself, so it runs from wherever the worker stages it; the pinned wheels' extension modules
still link the manylinux baseline (glibc, libstdc++, libgcc_s, zlib) from the worker's system.

Listing and hashing a tree (zig's installed tree is 373 MB in 20k files) happens once per tree: its file list with
digests is kept in kiln's cache under the tree's identity, and used while every file keeps its size.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kiln.build_rules.actions import Tool
from kiln.build_rules.digests import sha256_file
from kiln.build_rules.fsutil import atomic_write_bytes
from kiln.build_rules.remote.base import InputFile, RemoteError
from kiln.build_rules.rules.toolchains import PYTHON_TOOL, ZIG_TOOL
from kiln.build_rules.store import Store
from kiln.toolchain import python, zig

TOOLS_DIR = "_tools"
_LAYOUT_VERSION = 3  # bumped when a tree's layout or listing format changes


@dataclass(frozen=True)
class ToolTree:
    program: str  # the tool's path relative to the execution root
    files: dict[str, InputFile]  # every file of the tree, by path relative to the execution root


@dataclass(frozen=True)
class _Layout:
    name: str
    identity: str  # decides the files: the tree is listed and hashed again only when it changes
    program: str  # relative to the tree
    files: Callable[[], dict[str, Path]]  # path in the tree -> file here
    runpath: Callable[[str], str] = lambda path: ""  # the RUNPATH a file gets in the tree, "" to keep its own


class ToolTrees:
    """The trees of the tools one build's remote actions run, each listed once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._trees: dict[str, tuple[str, dict[str, InputFile]]] = {}  # identity -> directory, files
        self._lock = threading.Lock()

    def tree(self, tool: Tool) -> ToolTree:
        """Raises RemoteError for a tool that cannot be sent (then the action runs locally)."""
        try:
            layout = _layout(tool)
            with self._lock:  # actions started together wait for one listing, not one each
                if layout.identity not in self._trees:
                    self._trees[layout.identity] = self._list(layout)
                directory, files = self._trees[layout.identity]
        except OSError as error:
            raise RemoteError(f"cannot send tool {tool.name}: {error}") from None
        # Tools of one tree (a source package's include dir and its .c) share the listing, not the program.
        return ToolTree(os.path.normpath(f"{directory}/{layout.program}"), files)

    def _list(self, layout: _Layout) -> tuple[str, dict[str, InputFile]]:
        directory = f"{TOOLS_DIR}/{re.sub(r'[^A-Za-z0-9._-]', '_', layout.name)}-{layout.identity[:16]}"
        listing = self._cached_listing(layout) or self._make_listing(layout)
        return directory, {f"{directory}/{path}": InputFile(Path(source), digest, executable, link)
                           for path, (source, digest, _, executable, link) in listing.items()}

    def _listing_path(self, layout: _Layout) -> Path:
        return self.store.root / "tool-trees" / f"{layout.identity}-v{_LAYOUT_VERSION}.json"

    def _cached_listing(self, layout: _Layout) -> dict[str, list] | None:
        try:
            listing = json.loads(self._listing_path(layout).read_bytes())
        except (OSError, ValueError):
            return None
        unchanged = all(link or _size(source) == size for source, _, size, _, link in listing.values())
        return listing if unchanged else None

    def _make_listing(self, layout: _Layout) -> dict[str, list]:
        listing = {}
        for path, source in sorted(layout.files().items()):
            if _inner_link(path, source):
                listing[path] = [os.fspath(source), "", 0, False, os.readlink(source)]
                continue
            if not source.is_file():  # a link out of the tree to no file
                continue
            executable, runpath = bool(source.stat().st_mode & 0o100), layout.runpath(path)
            if runpath:
                source = self._relocated(source, runpath)
            listing[path] = [os.fspath(source), sha256_file(source), source.stat().st_size, executable, ""]
        atomic_write_bytes(self._listing_path(layout), json.dumps(listing, sort_keys=True).encode())
        return listing

    def _relocated(self, source: Path, runpath: str) -> Path:
        """A copy of `source` that finds its libraries at `runpath`, kept in the store."""
        from kiln.runtime_trim.bundle import BundleError, patchelf
        self.store.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.store.root) as scratch:  # beside the store: a move, not a copy
            copy = Path(scratch) / source.name
            shutil.copy2(source, copy)
            try:
                done = subprocess.run([patchelf(), "--set-rpath", runpath, str(copy)],
                                      capture_output=True, text=True)
            except BundleError as error:
                raise RemoteError(f"cannot relocate {source.name}: {error}") from None
            if done.returncode != 0:
                raise RemoteError(f"patchelf could not relocate {source}: {done.stderr.strip()}")
            return self.store.blob_path(self.store.put_file(copy))


def _layout(tool: Tool) -> _Layout:
    if tool.name.startswith(PYTHON_TOOL):
        return _Layout("python", python.relocatable_identity(), python.RELOCATABLE_INTERPRETER,
                       python.relocatable_files, python.relocatable_runpath)
    if len(tool.mounts) != 1:
        raise RemoteError(f"tool {tool.name} is not one directory, so it cannot be sent to a remote worker")
    root = Path(tool.mounts[0])
    if tool.name == ZIG_TOOL:
        return _Layout(tool.name, tool.digest, os.path.relpath(tool.path, root),
                       lambda: {p: f for p, f in _files_below(root).items() if zig.needed_for_targets(p)})
    # external_tree names a program inside a pinned tree "name:arch/program": the tree is "name:arch"
    return _Layout(tool.name.split("/")[0], tool.digest, os.path.relpath(tool.path, root), lambda: _files_below(root))


def _files_below(root: Path) -> dict[str, Path]:
    """A tree's files and links (a link to a directory is not followed)."""
    return {path.relative_to(root).as_posix(): path for path in sorted(root.rglob("*"))
            if (path.is_file() or path.is_symlink()) and "__pycache__" not in path.parts}


def _inner_link(path: str, source: Path) -> bool:
    """A link that names something inside its tree stays a link; one out of it is the file it names."""
    if not source.is_symlink():
        return False
    target = os.readlink(source)
    return not target.startswith("/") and not os.path.normpath(f"{os.path.dirname(path)}/{target}").startswith("..")


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None
