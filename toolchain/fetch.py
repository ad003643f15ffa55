"""Fetch pinned external artifacts into the cache: `$XDG_CACHE_HOME/kiln/external/<sha256>/`.

    python -m kiln.toolchain.fetch libhsa-runtime64-1 libtpu --arch amd64   # prints each unpacked tree
    python -m kiln.toolchain.fetch --all --arch arm64

Each artifact comes through the ordinary client (pip, apt-get), so the machine's mirrors and proxies
apply; its sha256 is checked before anything is unpacked; it is unpacked into a temporary directory
renamed into place last, under a per-artifact file lock, so concurrent and interrupted fetches never
leave a tree a later run trusts. A tree already in the cache needs no client and no network.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kiln.toolchain import debian, wheels
from kiln.toolchain.errors import FetchError
from kiln.toolchain.lockfile import ARCHS, ARTIFACT_FILE, Artifact, Lock, load

__all__ = ["FetchError", "ensure", "ensure_set", "vendor_trees", "fetch_all", "external_root", "ARTIFACT_FILE"]


def external_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kiln" / "external"


def ensure(name: str, arch: str = "amd64", suite: str = "", *, lock: Lock | None = None) -> Path:
    """The unpacked tree of the pinned artifact `name` for `arch` (and Debian `suite`, when a name is
    pinned from several), fetched first if the cache lacks it."""
    return _ensure((lock or load()).find(name, arch, suite))


def ensure_set(provides: str, arch: str, *, lock: Lock | None = None) -> list[Path]:
    """Unpacked trees of every artifact for `arch` whose `provides` starts with `provides` ("rocm", "base")."""
    artifacts = (lock or load()).matching(provides, arch)
    if not artifacts:
        raise FetchError(f"no pinned artifact provides '{provides}' for {arch}")
    return [_ensure(a) for a in artifacts]


def vendor_trees(platform: str, arch: str, *, lock: Lock | None = None) -> list[Path]:
    """Unpacked trees of every set a platform's runtime is trimmed from (the lock's [vendor.NAME] `sets`)."""
    lock = lock or load()
    return [tree for provides in lock.vendor(platform).sets for tree in ensure_set(provides, arch, lock=lock)]


def fetch_all(arch: str, *, lock: Lock | None = None) -> list[Path]:
    """Prefetch every artifact pinned for `arch` (for offline builds)."""
    return [_ensure(a) for a in (lock or load()).artifacts if a.arch in (arch, "all")]


def _ensure(artifact: Artifact) -> Path:
    if not artifact.sha256:
        raise FetchError(f"{artifact.label} is not pinned: run python -m kiln.toolchain.lock --update {artifact.name}")
    root = external_root()
    tree = root / artifact.sha256
    if tree.is_dir():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{artifact.sha256}.lock"):
        if tree.is_dir():  # another process finished it while we waited
            return tree
        for stale in root.glob(f".{artifact.sha256}.*"):  # left by a killed fetch; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{artifact.sha256}.", dir=root))
        try:
            unpacked = _fetch_into(artifact, work)
            os.rename(unpacked, tree)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tree


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _client(kind: str):
    """(download, extract) for an artifact kind, looked up when called."""
    if kind == "wheel":
        return wheels.download, wheels.extract
    if kind == "deb":
        return debian.download, debian.extract
    return debian.download_source, debian.extract_source


def _fetch_into(artifact: Artifact, work: Path) -> Path:
    download, extract = _client(artifact.kind)
    archive = download(artifact, work / "download")
    verify(artifact, archive)
    unpacked = work / "tree"
    extract(archive, unpacked)
    identity = {"name": artifact.name, "version": artifact.version, "kind": artifact.kind, "arch": artifact.arch,
                "filename": artifact.filename, "sha256": artifact.sha256, "provides": artifact.provides}
    (unpacked / ARTIFACT_FILE).write_text(json.dumps(identity, indent=1, sort_keys=True) + "\n")
    return unpacked


def verify(artifact: Artifact, archive: Path) -> None:
    """Raise unless `archive` is exactly the pinned file (name, size, sha256)."""
    if archive.name != artifact.filename:
        raise FetchError(f"{artifact.label}: the client delivered {archive.name}, the pin is {artifact.filename}")
    size = archive.stat().st_size
    if size < artifact.size:
        raise FetchError(f"{artifact.label}: truncated download of {archive.name}: {size} of {artifact.size} bytes")
    actual = sha256_file(archive)
    if actual != artifact.sha256:
        raise FetchError(f"{artifact.label}: sha256 mismatch for {archive.name}: "
                         f"expected {artifact.sha256}, got {actual}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.toolchain.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="artifact names from toolchain/lock.toml")
    parser.add_argument("--all", action="store_true", help="every artifact pinned for --arch")
    parser.add_argument("--arch", choices=ARCHS, default="amd64")
    args = parser.parse_args(argv)
    if bool(args.names) == args.all:
        parser.error("give artifact names or --all")
    try:
        trees = fetch_all(args.arch) if args.all else [ensure(name, args.arch) for name in args.names]
    except FetchError as e:
        print(f"fetch: error: {e}", file=sys.stderr)
        return 1
    print("\n".join(map(str, trees)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
