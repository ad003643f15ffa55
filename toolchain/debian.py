"""Debian packages through the machine's own apt (`apt-get download`, `apt-cache policy`), and unpacking a
.deb without dpkg: an `ar` archive whose `data.tar.*` member holds the files."""

from __future__ import annotations

import gzip
import io
import lzma
import re
import subprocess
import tarfile
from pathlib import Path
from typing import BinaryIO

import zstandard

from kiln.toolchain.errors import FetchError
from kiln.toolchain.lockfile import Artifact

_AR_MAGIC = b"!<arch>\n"
_UNREACHABLE = re.compile(r"Could not connect|Could not resolve|Temporary failure resolving|Connection failed"
                          r"|Unable to connect|Network is unreachable|Connection timed out")
_MISSING = re.compile(r"Version '[^']*' for '[^']*' was not found|Unable to locate package|"
                      r"Can't select (candidate )?version|has no installation candidate")


def apt_spec(name: str, arch: str) -> str:
    return name if arch == "all" else f"{name}:{arch}"


def download(artifact: Artifact, directory: Path) -> Path:
    """`apt-get download NAME:ARCH=VERSION` into `directory`; returns the .deb."""
    directory.mkdir(parents=True, exist_ok=True)
    _apt(["apt-get", "download", f"{apt_spec(artifact.name, artifact.arch)}={artifact.version}"], artifact.label,
         cwd=directory)
    debs = sorted(directory.glob("*.deb"))
    if len(debs) != 1:
        raise FetchError(f"{artifact.label}: apt-get download left {len(debs)} .deb files, expected one")
    return debs[0]


def candidate(name: str, arch: str) -> str:
    """The newest version apt would install for NAME:ARCH (from `apt-cache policy`)."""
    spec = apt_spec(name, arch)
    out = _apt(["apt-cache", "policy", spec], spec)
    found = re.search(r"Candidate: (\S+)", out)
    if not found or found.group(1) == "(none)":
        raise FetchError(f"{spec}: apt has no candidate version (is the architecture added and apt-get update run?)")
    return found.group(1)


def _apt(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise FetchError(f"{what}: {argv[0]} is not installed; .deb artifacts need apt") from None
    errors = [line for line in done.stderr.splitlines() if line.startswith("E:")]
    if done.returncode != 0 or errors:
        detail = errors[-1] if errors else " ".join(done.stderr.split())[-300:] or f"exit status {done.returncode}"
        unreachable = _UNREACHABLE.search(done.stderr)
        if unreachable:
            reason = done.stderr[unreachable.start():].splitlines()[0]
            raise FetchError(f"{what}: apt could not reach the package archive ({reason})")
        if _MISSING.search(done.stderr):
            raise FetchError(f"{what}: not available from apt's package lists ({detail}); "
                             f"run apt-get update, or update the pin")
        raise FetchError(f"{what}: {' '.join(argv[:2])} failed ({detail})")
    return done.stdout


def extract(deb: Path, destination: Path) -> None:
    """Unpack the data member of `deb` into `destination`, keeping symlinks as the package has them."""
    members = _ar_members(deb.read_bytes())
    names = [n for n in members if n.startswith("data.tar")]
    if len(names) != 1:
        raise FetchError(f"{deb.name}: not a Debian package (no data.tar member)")
    with tarfile.open(fileobj=_decompressed(names[0], members[names[0]]), mode="r|") as tar:
        tar.extractall(destination, filter="tar")


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
