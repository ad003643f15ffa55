"""Debian packages through the machine's apt-get with kiln's own lists per suite (apt_sources.py), and
unpacking a .deb without dpkg: an `ar` archive whose `data.tar.*` member holds the files. Source
packages (kind "dsc") come through `apt-get source --download-only`; their pin is the upstream tarball."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import re
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import BinaryIO

import zstandard

from kiln.toolchain.apt_sources import PrivateApt
from kiln.toolchain.errors import FetchError
from kiln.toolchain.lockfile import Artifact

_AR_MAGIC = b"!<arch>\n"
_UNREACHABLE = re.compile(r"Could not connect|Could not resolve|Temporary failure resolving|Connection failed"
                          r"|Unable to connect|Network is unreachable|Connection timed out")
_MISSING = re.compile(r"Version '[^']*' for '[^']*' was not found|Unable to locate package|"
                      r"Can't select (candidate )?version|has no installation candidate")


class NotInLists(FetchError):
    """apt's lists have no such package or version."""


def apt_spec(name: str, arch: str) -> str:
    return name if arch == "all" else f"{name}:{arch}"


def download(artifact: Artifact, directory: Path) -> Path:
    """`apt-get download NAME:ARCH=VERSION` into `directory` from kiln's lists for the pin's suite."""
    return _apt_get_one(artifact, "deb", ["download", f"{apt_spec(artifact.name, artifact.arch)}={artifact.version}"],
                        directory, "*.deb", ".deb files")


def download_source(artifact: Artifact, directory: Path) -> Path:
    """`apt-get source --download-only NAME=VERSION` into `directory`; returns the upstream tarball."""
    return _apt_get_one(artifact, "deb-src", ["source", "--download-only", f"{artifact.name}={artifact.version}"],
                        directory, "*.orig.tar.*", "upstream tarballs")


def _apt_get_one(artifact: Artifact, kind: str, command: list[str], directory: Path, pattern: str,
                 what: str) -> Path:
    """Run `apt-get COMMAND` with the artifact's private lists in `directory`; the one file it leaves."""
    directory.mkdir(parents=True, exist_ok=True)
    apt = private_apt(artifact.suite, kind)
    _with_lists(apt, ["apt-get", *apt.options, *command], artifact.label, cwd=directory)
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise FetchError(f"{artifact.label}: apt-get {command[0]} left {len(found)} {what}, expected one")
    return found[0]


def extract_source(tarball: Path, destination: Path) -> None:
    """Unpack an upstream source tarball (its top folder, e.g. civetweb-1.15/, kept)."""
    with tarfile.open(tarball) as tar:
        _extract_all(tar, destination, strict=True)


def candidate(artifact: Artifact) -> str:
    """The newest version of the pin's package in its suite (any pocket: -updates, -security)."""
    source = artifact.kind == "dsc"
    spec = artifact.name if source else apt_spec(artifact.name, artifact.arch)
    apt = private_apt(artifact.suite, "deb-src" if source else "deb")
    for line in _with_lists(apt, ["apt-cache", *apt.options, "madison", spec], spec).splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 3 and _release(fields[2]) == artifact.suite:
            return fields[1]  # madison lists the newest first
    raise FetchError(f"{spec}: apt's {artifact.suite} lists have no version of it")


def _release(source: str) -> str:
    """'http://mirror/debian bookworm-security/main amd64 Packages' -> 'bookworm'"""
    words = source.split()
    return words[1].split("/")[0].partition("-")[0] if len(words) > 1 else ""


def private_apt(suite: str, kind: str = "deb") -> PrivateApt:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return PrivateApt(suite, Path(base) / "kiln", kind=kind)


def _with_lists(apt: PrivateApt, argv: list[str], what: str, cwd: Path | None = None) -> str:
    """Runs apt on kiln's lists: fetched first if there are none, and again once if they lack the package."""
    with apt.locked():
        if not apt.has_lists():
            _update(apt, what)
        try:
            return _apt(argv, what, apt.suite, cwd)
        except NotInLists:
            _update(apt, what)
            return _apt(argv, what, apt.suite, cwd)


def _update(apt: PrivateApt, what: str) -> None:
    _apt(["apt-get", *apt.options, "update"], what, apt.suite)
    if not apt.has_lists():
        raise FetchError(f"{what}: apt-get update fetched no package lists for {apt.suite} (see the machine's apt sources)")


def _apt(argv: list[str], what: str, suite: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise FetchError(f"{what}: {argv[0]} is not installed; .deb artifacts need apt") from None
    unreachable = _UNREACHABLE.search(done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("E:")]
    if done.returncode != 0 or errors or unreachable:
        detail = errors[-1] if errors else " ".join(done.stderr.split())[-300:] or f"exit status {done.returncode}"
        if unreachable:
            reason = done.stderr[unreachable.start():].splitlines()[0]
            raise FetchError(f"{what}: apt could not reach the package archive ({reason})")
        if _MISSING.search(done.stderr):
            raise NotInLists(f"{what}: not available from apt's package lists for {suite} ({detail}); update the pin")
        command = " ".join([a for a in argv if not a.startswith("-o")][:2])
        raise FetchError(f"{what}: {command} failed ({detail})")
    return done.stdout


def extract(deb: Path, destination: Path) -> None:
    """Unpack the data member of `deb` into `destination`, keeping symlinks as the package has them."""
    members = _ar_members(deb.read_bytes())
    names = [n for n in members if n.startswith("data.tar")]
    if len(names) != 1:
        raise FetchError(f"{deb.name}: not a Debian package (no data.tar member)")
    with tarfile.open(fileobj=_decompressed(names[0], members[names[0]]), mode="r|") as tar:
        _extract_all(tar, destination, strict=False)


def _extract_all(tar: tarfile.TarFile, destination: Path, strict: bool) -> None:
    """extractall with tarfile's "data" filter (strict) or its "tar" filter. A Python without extraction
    filters (before 3.11.4: Debian 12's python3.11, which kiln runs on arm64 build hosts) gets the checks
    that matter from kiln: leading slashes stripped, nothing lands outside `destination`, no set-id bits,
    and when strict no links out of it and no device files."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data" if strict else "tar")
        return
    root = os.path.realpath(destination)
    for member in tar:
        member.name = member.name.lstrip("/")
        _refuse_escape(member, root, strict)
        member.mode &= ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH)
        tar.extract(member, destination)


def _refuse_escape(member: tarfile.TarInfo, root: str, strict: bool) -> None:
    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(os.path.join(root, path))]) == root
    linked = os.path.join(os.path.dirname(member.name), member.linkname) if member.issym() else member.linkname
    escapes = (not inside(member.name)
               or (strict and (member.isdev() or ((member.issym() or member.islnk()) and
                                                   (os.path.isabs(member.linkname) or not inside(linked))))))
    if escapes:
        raise FetchError(f"{member.name}: refusing to unpack a member that leaves the destination or is a device")


def _ar_members(blob: bytes) -> dict[str, bytes]:
    if not blob.startswith(_AR_MAGIC):
        raise FetchError("not an ar archive")
    members, offset = {}, len(_AR_MAGIC)
    while offset + 60 <= len(blob):
        header = blob[offset:offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        members[name] = blob[offset + 60:offset + 60 + size]
        offset += 60 + size + (size % 2)
    return members


def _decompressed(name: str, data: bytes) -> BinaryIO:
    """A streaming reader, so a 1.3 GB library never sits in memory whole."""
    raw = io.BytesIO(data)
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw)
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(raw)
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if name == "data.tar":
        return raw
    raise FetchError(f"unsupported compression of {name}")
