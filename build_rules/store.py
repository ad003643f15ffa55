"""The local cache: a content-addressed store of blobs and an action cache of results.

Layout under $XDG_CACHE_HOME/kiln: `cas/<2 hex>/<sha256>` (blobs), `ac/<2 hex>/<key>.json`
(ActionResult: output path -> digest and mode). Every write is temp + rename, and the action
entry is written last, so a killed build never leaves a result that a later build trusts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kiln.build_rules.digests import DigestCache, sha256_file
from kiln.build_rules.fsutil import atomic_write_bytes
from kiln.toolchain.fsio import atomic_path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kiln"


@dataclass(frozen=True)
class OutputFile:
    digest: str  # of the file, or for a directory of its tree manifest (a JSON blob listing its files)
    executable: bool
    tree: bool = False


class Store:
    def __init__(self, root: Path | None = None):
        self.root = root or cache_root()
        self.digests = DigestCache(self.root / "digests.json")

    def blob_path(self, digest: str) -> Path:
        return self.root / "cas" / digest[:2] / digest

    def put_file(self, path: Path) -> str:
        """Move `path` into the store (it must not be used afterwards); returns its digest."""
        digest = sha256_file(path)
        target = self.blob_path(digest)
        if self.verify(digest):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, 0o444) as tmp:
            os.replace(path, tmp) if _same_device(path, target.parent) else _copy(path, tmp)
        self.digests.record(target, digest)
        return digest

    def verify(self, digest: str) -> bool:
        """True if the blob is present with the right bytes; a corrupted blob is deleted."""
        path = self.blob_path(digest)
        if not path.exists():
            return False
        if self.digests.known(path) == digest:
            return True
        if sha256_file(path) == digest:
            self.digests.record(path, digest)
            return True
        path.unlink(missing_ok=True)
        self.digests.forget(path)
        return False

    def put_tree(self, directory: Path) -> str:
        """Move every file under `directory` into the store; returns the digest of its tree manifest."""
        entries = {}
        for path in sorted(directory.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise ValueError(f"{path.relative_to(directory)} is not a regular file or directory")
            if path.is_file():
                executable = bool(path.stat().st_mode & 0o100)
                entries[path.relative_to(directory).as_posix()] = {"digest": self.put_file(path), "executable": executable}
        manifest = directory.parent / f".{directory.name}.tree"
        manifest.write_bytes(json.dumps({"files": entries}, sort_keys=True).encode())
        return self.put_file(manifest)

    def tree_files(self, digest: str) -> dict[str, OutputFile]:
        raw = json.loads(self.blob_path(digest).read_bytes())["files"]
        return {p: OutputFile(e["digest"], e["executable"]) for p, e in raw.items()}

    def verify_output(self, output: OutputFile) -> bool:
        if not self.verify(output.digest):
            return False
        return not output.tree or all(self.verify(f.digest) for f in self.tree_files(output.digest).values())

    def get_action(self, key: str) -> dict[str, OutputFile] | None:
        try:
            raw = json.loads(self._action_path(key).read_bytes())
            return {p: OutputFile(o["digest"], o["executable"], o.get("tree", False)) for p, o in raw["outputs"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put_action(self, key: str, outputs: dict[str, OutputFile]) -> None:
        encoded = {"outputs": {p: {"digest": o.digest, "executable": o.executable, "tree": o.tree}
                               for p, o in sorted(outputs.items())}}
        atomic_write_bytes(self._action_path(key), json.dumps(encoded, sort_keys=True).encode())

    def forget_action(self, key: str) -> None:
        self._action_path(key).unlink(missing_ok=True)

    def _action_path(self, key: str) -> Path:
        return self.root / "ac" / key[:2] / f"{key}.json"


def _same_device(a: Path, directory: Path) -> bool:
    return os.stat(a).st_dev == os.stat(directory).st_dev


def _copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
