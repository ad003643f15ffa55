"""The files a platform's runtime needs, each with the chain that requires it.

Starting from the roots (the launcher) and the vendor's entry libraries, breadth first: every DT_NEEDED
resolved inside the vendor trees, every library the vendor's dlopen list says a kept library opens,
the data files kept libraries open, and per-GPU-arch data for the requested archs only. Host-provided
libraries (glibc, GPU driver user libraries) are never kept. Strings in roots and entries that look
like sonames but are neither needed nor declared are reported as possible dlopen targets.
"""

from __future__ import annotations

import fnmatch
import mmap
import posixpath
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from kiln.runtime_trim.elf import ElfInfo, is_elf, read_elf
from kiln.runtime_trim.sysroot import Located, Node, Sysroot, library_path, search_dirs
from kiln.toolchain.lockfile import DataFiles, Vendor

GLIBC = ("libc.so.*", "libm.so.*", "libmvec.so.*", "libdl.so.*", "libpthread.so.*", "librt.so.*", "libresolv.so.*",
         "libutil.so.*", "libanl.so.*", "libnss_*.so.*", "ld-linux*.so.*")
GPU_DRIVER = ("libcuda.so*", "libnvidia-*")
_SONAME_LIKE = re.compile(rb"(?<![\w.+-])lib[\w+-][\w.+-]*?\.so(?:\.\d+)*(?![\w.+-])")


class ClosureError(Exception):
    """A needed library is missing from the vendor trees; the message names who needs it."""


@dataclass(frozen=True)
class Step:
    name: str
    how: str  # root | entry | DT_NEEDED | dlopen | data | arch data


@dataclass(frozen=True)
class Kept:
    name: str  # the name the loader asks for, or a data file's path inside the trees
    located: Located
    chain: tuple[Step, ...]
    info: ElfInfo | None  # None for data files


@dataclass
class Closure:
    platform: str
    roots: list[ElfInfo]
    kept: dict[str, Kept] = field(default_factory=dict)
    host: dict[str, tuple[str, str]] = field(default_factory=dict)  # host-provided name -> (first needer, why)
    possible_dlopen: list[tuple[str, str]] = field(default_factory=list)  # (soname-like string, file holding it)
    absent_optional: list[tuple[str, str]] = field(default_factory=list)  # (declared dlopen target, opener)
    missing_data: list[str] = field(default_factory=list)  # declared data globs that matched nothing


def host_provided(name: str, extra: tuple[str, ...]) -> str | None:
    """Why `name` is never bundled, or None; `extra` are patterns the build declares host-provided."""
    if any(fnmatch.fnmatchcase(name, p) for p in GLIBC):
        return "glibc family, provided by the host"
    if any(fnmatch.fnmatchcase(name, p) for p in GPU_DRIVER):
        return "GPU driver user library, provided by the host's driver install"
    if any(fnmatch.fnmatchcase(name, p) for p in extra):
        return "declared host-provided by the build (e.g. in the image's base layer)"
    return None


def compute(vendor: Vendor, sysroot: Sysroot, roots: list[Path], entries: list[str], archs: list[str],
            known: frozenset[str] = frozenset(), host: tuple[str, ...] = ()) -> Closure:
    """The closure for `vendor`'s platform. `known` are sonames other vendors declare (not reported as
    possible dlopen targets when a launcher for several platforms names them); `host` are extra
    host-provided patterns (libstdc++.so.6 when the base image carries it)."""
    return _Walk(vendor, sysroot, archs, known, host).run(roots, entries)


def soname_strings(path: Path) -> set[str]:
    """Strings in `path` that look like sonames. Finding ".so" first keeps a 500 MB library to a second."""
    found = set()
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        at = data.find(b".so")
        while at != -1:
            window = data[max(0, at - 128):at + 32]
            found.update(m.group(0).decode() for m in _SONAME_LIKE.finditer(window))
            at = data.find(b".so", at + 3)
    return found


class _Walk:
    def __init__(self, vendor: Vendor, sysroot: Sysroot, archs: list[str], known: frozenset[str],
                 host: tuple[str, ...]):
        self.vendor, self.sysroot, self.archs, self.known, self.host = vendor, sysroot, archs, known, host
        self.closure = Closure(vendor.name, [])
        self.queue: deque[tuple[Node, tuple[Step, ...]]] = deque()
        self.infos: dict[Path, ElfInfo] = {}

    def run(self, roots: list[Path], entries: list[str]) -> Closure:
        root_nodes = [Node(r.name, read_elf(r), None, None) for r in roots]
        self.closure.roots = [n.info for n in root_nodes]
        for node in root_nodes:
            self.queue.append((node, (Step(node.name, "root"),)))
        launcher = root_nodes[0] if root_nodes else None
        for entry in entries:
            self._entry(entry, launcher)
        while self.queue:
            self._visit(*self.queue.popleft())
        for node in [*root_nodes, *(self._node(k) for k in self.closure.kept.values() if k.chain[-1].how == "entry")]:
            self._scan_strings(node)
        return self.closure

    def _entry(self, name: str, launcher: Node | None) -> None:
        chain = (Step(launcher.name, "root"),) if launcher else ()
        probe = launcher or Node(name, self._any_info(name), None, None)
        located = self._find(name, probe, library_path(probe.info)) or self._find(
            name, probe, sorted({posixpath.dirname(rel) for rel in self.sysroot.named(name)}))
        if located is None:
            raise ClosureError(f"entry library {name} of {self.vendor.name} is not in the vendor trees")
        self._keep(name, located, chain + (Step(name, "entry"),), launcher)

    def _any_info(self, name: str) -> ElfInfo:
        """Without a launcher, the entry library itself decides which machine the bundle is for."""
        for rel in self.sysroot.named(name):
            located = self.sysroot.lookup(rel)
            if located and is_elf(located.real):
                return self._read(located.real)
        raise ClosureError(f"entry library {name} of {self.vendor.name} is not in the vendor trees")

    def _visit(self, node: Node, chain: tuple[Step, ...]) -> None:
        for name in node.info.needed:
            self._require(name, node, chain, "DT_NEEDED", optional=False)
        for dlopen in self.vendor.dlopen:
            if dlopen.by == node.name:
                self._require(dlopen.opens, node, chain, "dlopen", dlopen.optional)
        self._data(node, chain, self.vendor.data, "data", [""])
        self._data(node, chain, self.vendor.arch_data, "arch data", self.archs)

    def _require(self, name: str, node: Node, chain: tuple[Step, ...], how: str, optional: bool) -> None:
        why = host_provided(name, self.host)
        if why:
            self.closure.host.setdefault(name, (node.name, why))
            return
        if name in self.closure.kept:
            return
        located = self._find(name, node, search_dirs(node))
        if located is not None:
            self._keep(name, located, chain + (Step(name, how),), node)
        elif optional:
            self.closure.absent_optional.append((name, node.name))
        else:
            path = " -> ".join(step.name for step in chain)
            raise ClosureError(f"{node.name} needs {name} ({how}), which is not in the vendor trees (chain: {path})")

    def _find(self, name: str, requester: Node, dirs: list[str]) -> Located | None:
        for directory in dirs:
            located = self.sysroot.lookup(posixpath.join(directory, name))
            if located and is_elf(located.real) and requester.info.compatible(self._read(located.real)):
                return located
        return None

    def _keep(self, name: str, located: Located, chain: tuple[Step, ...], loader: Node | None) -> None:
        info = self._read(located.real)
        self.closure.kept[name] = Kept(name, located, chain, info)
        self.queue.append((Node(name, info, located.rel, loader), chain))

    def _data(self, node: Node, chain: tuple[Step, ...], rules: tuple[DataFiles, ...], how: str,
              archs: list[str]) -> None:
        for rule in (r for r in rules if r.by == node.name):
            for arch, pattern in ((a, p) for a in archs for p in rule.paths):
                pattern = pattern.replace("{isa}", re.sub(r"^(gfx|sm_)", "", arch))
                matches = self.sysroot.glob(pattern)
                if not matches:
                    where = f"{arch}: " if arch else ""
                    self.closure.missing_data.append(f"{where}no {pattern} (opened by {node.name})")
                for rel in matches:
                    if rel not in self.closure.kept:
                        located = self.sysroot.lookup(rel)
                        if located:
                            self.closure.kept[rel] = Kept(rel, located, chain + (Step(rel, how),), None)

    def _scan_strings(self, node: Node) -> None:
        declared = {d.opens for d in self.vendor.dlopen if d.by == node.name} | set(self.vendor.entry) | self.known
        own = {node.name, node.info.soname or "", re.sub(r"(\.so)(\.\d+)*$", r"\1", node.info.soname or node.name)}
        for name in sorted(soname_strings(node.info.path) - declared - own - set(node.info.needed)):
            if not host_provided(name, self.host):
                self.closure.possible_dlopen.append((name, node.name))

    def _node(self, kept: Kept) -> Node:
        return Node(kept.name, kept.info, kept.located.rel, None)

    def _read(self, path: Path) -> ElfInfo:
        if path not in self.infos:
            self.infos[path] = read_elf(path)
        return self.infos[path]

