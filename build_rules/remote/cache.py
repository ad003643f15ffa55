"""A remote cache on any transport that speaks action results and blobs (HTTP or gRPC).

Entries are REAPI `ActionResult` messages under kiln's action key; output directories are `Tree`
messages in the CAS. Every downloaded blob goes through the local store, whose digest of the
bytes must equal the one the entry names, or the entry is not used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from google.protobuf.message import DecodeError

from kiln.build_rules.actions import Action
from kiln.build_rules.remote.base import BadEntry
from kiln.build_rules.remote.merkle import FileNode, checked_hash, digest_of, tree, tree_files
from kiln.build_rules.remote.protos import ActionResult, Digest, Tree
from kiln.build_rules.store import OutputFile, Store

Blob = tuple[Digest, "Path | bytes"]  # a blob to upload: its digest and its bytes or the file holding them


class Transport(Protocol):
    def get_action_result(self, key: str) -> ActionResult | None: ...

    def put_action_result(self, key: str, result: ActionResult) -> None: ...

    def find_missing(self, digests: list[Digest]) -> list[Digest]: ...

    def upload(self, blobs: list[Blob]) -> None: ...

    def download(self, wanted: list[tuple[Digest, Path]]) -> None:
        """Write each blob to its path; raises BadEntry for a blob the server does not have."""


class ProtocolCache:
    def __init__(self, transport: Transport):
        self.transport = transport

    def lookup(self, key: str, action: Action, store: Store) -> dict[str, OutputFile] | None:
        result = self.transport.get_action_result(key)
        if result is None or result.exit_code != 0:
            return None
        files = {f.path for f in result.output_files}
        directories = {d.path for d in result.output_directories}
        if files != {o.path for o in action.outputs if not o.directory} or \
                directories != {o.path for o in action.outputs if o.directory}:
            return None
        return fetch_outputs(result, self.transport, store)

    def upload(self, key: str, action: Action, outputs: dict[str, OutputFile], store: Store) -> None:
        result, blobs = describe_outputs(outputs, store)
        upload_missing(self.transport, blobs)
        self.transport.put_action_result(key, result)


def upload_missing(transport: Transport, blobs: dict[str, Blob]) -> None:
    """Upload the blobs the server lacks (the empty blob it always has, as REAPI says)."""
    missing = transport.find_missing([digest for digest, _ in blobs.values() if digest.size_bytes])
    transport.upload([blobs[d.hash] for d in missing])


def describe_blob(data: bytes) -> tuple[str, Blob]:
    digest = digest_of(data)
    return digest.hash, (digest, data)


def download(transport: Transport, wanted: list[tuple[Digest, Path]]) -> None:
    for digest, path in wanted:
        if not digest.size_bytes:
            path.write_bytes(b"")
    transport.download([(digest, path) for digest, path in wanted if digest.size_bytes])


def describe_outputs(outputs: dict[str, OutputFile], store: Store) -> tuple[ActionResult, dict[str, Blob]]:
    """Local outputs as an `ActionResult`, with every blob it references, by hash."""
    result = ActionResult(exit_code=0)
    blobs: dict[str, Blob] = {}
    for path, output in sorted(outputs.items()):
        if not output.tree:
            digest = _local_digest(output.digest, store)
            blobs[digest.hash] = (digest, store.blob_path(output.digest))
            result.output_files.add(path=path, digest=digest, is_executable=output.executable)
            continue
        files = {}
        for relative, file in store.tree_files(output.digest).items():
            digest = _local_digest(file.digest, store)
            blobs[digest.hash] = (digest, store.blob_path(file.digest))
            files[relative] = FileNode(digest.hash, digest.size_bytes, file.executable)
        encoded = tree(files).SerializeToString(deterministic=True)
        tree_digest = digest_of(encoded)
        blobs[tree_digest.hash] = (tree_digest, encoded)
        result.output_directories.add(path=path, tree_digest=tree_digest)
    return result, blobs


def fetch_outputs(result: ActionResult, transport: Transport, store: Store) -> dict[str, OutputFile]:
    """Download the outputs an `ActionResult` names into the store (blobs it already holds are not fetched)."""
    _check_hashes(result)
    (store.root / "remote").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.root / "remote") as scratch:
        staging = Path(scratch)
        trees = _fetch_trees(result, transport, staging)
        wanted = [(f.digest, staging / f"f{i}") for i, f in enumerate(result.output_files)
                  if not store.verify(f.digest.hash)]
        for i, files in enumerate(trees):
            (staging / f"d{i}").mkdir()
            for relative, file in files.items():
                _plan(file, staging / f"d{i}" / relative, store, wanted)
        download(transport, wanted)
        outputs = {}
        for i, f in enumerate(result.output_files):
            downloaded = staging / f"f{i}"
            digest = _put(store, downloaded, f.digest.hash) if downloaded.exists() else f.digest.hash
            outputs[f.path] = OutputFile(digest, f.is_executable)
        for i, (d, files) in enumerate(zip(result.output_directories, trees)):
            outputs[d.path] = OutputFile(_put_tree(store, staging / f"d{i}", files), False, tree=True)
        return outputs


def _check_hashes(result: ActionResult) -> None:
    try:
        for digest in [*(f.digest for f in result.output_files), *(d.tree_digest for d in result.output_directories)]:
            checked_hash(digest.hash)
    except ValueError as error:
        raise BadEntry(str(error)) from None


def _fetch_trees(result: ActionResult, transport: Transport, staging: Path) -> list[dict[str, FileNode]]:
    wanted = [(d.tree_digest, staging / f"t{i}") for i, d in enumerate(result.output_directories)]
    download(transport, wanted)
    trees = []
    for digest, path in wanted:
        data = path.read_bytes()
        if digest_of(data) != digest:
            raise BadEntry(f"tree blob {digest.hash} has digest {digest_of(data).hash}")
        try:
            trees.append(tree_files(Tree.FromString(data)))
        except (ValueError, DecodeError) as error:
            raise BadEntry(f"tree blob {digest.hash}: {error}") from None
    return trees


def _plan(file: FileNode, target: Path, store: Store, wanted: list[tuple[Digest, Path]]) -> None:
    """Put a blob the store holds at `target` now; queue the others for download."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if store.verify(file.digest):
        shutil.copyfile(store.blob_path(file.digest), target)
    else:
        wanted.append((Digest(hash=file.digest, size_bytes=file.size), target))


def _put(store: Store, path: Path, expected: str) -> str:
    digest = store.put_file(path)
    if digest != expected:
        raise BadEntry(f"blob {expected} arrived with digest {digest}")
    return digest


def _put_tree(store: Store, directory: Path, files: dict[str, FileNode]) -> str:
    for relative, file in files.items():
        os.chmod(directory / relative, 0o755 if file.executable else 0o644)
    manifest = store.put_tree(directory)
    for relative, stored in store.tree_files(manifest).items():
        if stored.digest != files[relative].digest:
            raise BadEntry(f"blob {files[relative].digest} arrived with digest {stored.digest}")
    return manifest


def _local_digest(digest: str, store: Store) -> Digest:
    return Digest(hash=digest, size_bytes=store.blob_path(digest).stat().st_size)
