"""OCI image layouts (image-spec v1.1): `oci-layout`, `index.json` and content-addressed `blobs/sha256/`.

    layout = Layout.create(Path("out"))
    layer, diff_id = put_layer(layout, Path("app.tar"), "gzip")
    manifest = put_image(layout, [(layer, diff_id)], "amd64", {"Entrypoint": ["/app/prog"]}, created_time())
    layout.set_index([manifest], ref_name="latest")

JSON is written with sorted keys and no spaces, layers are compressed with fixed settings, and
`created` is fixed, so the same inputs give the same digests.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from kiln.build_rules.packaging.archive import GZIP_LEVEL, ZSTD_LEVEL

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
         "none": "application/vnd.oci.image.layer.v1.tar"}
PLATFORMS = {"amd64": {"architecture": "amd64", "os": "linux"},
             "arm64": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20


class LayoutError(Exception):
    """A layout directory is missing, malformed, or lacks a blob it refers to."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict:
        data = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            data["platform"] = self.platform
        if self.annotations:
            data["annotations"] = self.annotations
        return data

    @classmethod
    def from_json(cls, data: dict) -> Descriptor:
        try:
            return cls(data["mediaType"], data["digest"], data["size"], data.get("platform"), data.get("annotations"))
        except (KeyError, TypeError):
            raise LayoutError(f"malformed descriptor: {json.dumps(data)[:200]}") from None


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def created_time() -> str:
    """`SOURCE_DATE_EPOCH` as RFC 3339, or the epoch: image timestamps never depend on the clock."""
    seconds = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Layout:
    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def create(cls, root: Path) -> Layout:
        if root.exists() and any(root.iterdir()):
            raise LayoutError(f"{root} exists and is not empty")
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        return cls(root)

    @classmethod
    def open(cls, root: Path) -> Layout:
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise LayoutError(f"{root} is not an OCI image layout (no oci-layout or index.json)")
        return cls(root)

    def blob(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        if algorithm != "sha256" or len(encoded) != 64 or not all(c in "0123456789abcdef" for c in encoded):
            raise LayoutError(f"unsupported digest '{digest}'")
        return self.root / "blobs" / "sha256" / encoded

    def put_file(self, path: Path, media_type: str) -> Descriptor:
        """Move `path` (on the layout's filesystem) into the blob store under its digest."""
        digest = sha256_file(path)
        size = path.stat().st_size
        path.chmod(0o644)  # temporary files start private
        os.replace(path, self.blob(digest))
        return Descriptor(media_type, digest, size)

    def put_json(self, value: object, media_type: str) -> Descriptor:
        data = canonical_json(value)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blob(digest).write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    def read_json(self, descriptor: Descriptor) -> dict:
        path = self.blob(descriptor.digest)
        if not path.is_file():
            raise LayoutError(f"{self.root} lacks blob {descriptor.digest}")
        data = path.read_bytes()
        if "sha256:" + hashlib.sha256(data).hexdigest() != descriptor.digest:
            raise LayoutError(f"{self.root}: blob {descriptor.digest} does not match its digest")
        return json.loads(data)

    def link_blob(self, source: Layout, digest: str) -> None:
        """Hard-link a blob from another layout (copy across filesystems)."""
        target = self.blob(digest)
        if target.exists():
            return
        try:
            os.link(source.blob(digest), target)
        except OSError:
            shutil.copyfile(source.blob(digest), target)

    def set_index(self, manifests: list[Descriptor], ref_name: str | None = None) -> None:
        if ref_name:
            manifests = [replace(m, annotations={**(m.annotations or {}), REF_NAME: ref_name}) for m in manifests]
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [m.to_json() for m in manifests]}
        (self.root / "index.json").write_bytes(canonical_json(index))

    def manifests(self) -> list[Descriptor]:
        try:
            index = json.loads((self.root / "index.json").read_text())
            return [Descriptor.from_json(m) for m in index["manifests"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise LayoutError(f"{self.root}/index.json: {e}") from None

    def single_manifest(self) -> Descriptor:
        manifests = self.manifests()
        if len(manifests) != 1:
            raise LayoutError(f"{self.root} holds {len(manifests)} images; expected exactly one")
        return manifests[0]

    def walk(self, descriptor: Descriptor) -> Iterator[Descriptor]:
        """Every blob under `descriptor`, children before their parents (the order to push them)."""
        if descriptor.media_type == INDEX:
            for child in self.read_json(descriptor)["manifests"]:
                yield from self.walk(Descriptor.from_json(child))
        elif descriptor.media_type == MANIFEST:
            manifest = self.read_json(descriptor)
            yield Descriptor.from_json(manifest["config"])
            yield from (Descriptor.from_json(layer) for layer in manifest["layers"])
        else:
            raise LayoutError(f"unsupported manifest media type '{descriptor.media_type}'")
        yield descriptor


@contextlib.contextmanager
def _compressor(out: BinaryIO, compression: str, size: int) -> Iterator[BinaryIO]:
    if compression == "gzip":
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=GZIP_LEVEL) as sink:
            yield sink
    elif compression == "zstd":
        import zstandard
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
        with compressor.stream_writer(out, size=size, closefd=False) as sink:
            yield sink
    elif compression == "none":
        yield out
    else:
        raise LayoutError(f"compression must be one of {', '.join(LAYER)}, got '{compression}'")


def decompressed(source: BinaryIO, media_type: str) -> BinaryIO:
    """A reader of the tar inside a layer blob."""
    if media_type == LAYER["gzip"]:
        return gzip.GzipFile(fileobj=source, mode="rb")
    if media_type == LAYER["zstd"]:
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(source)
    if media_type == LAYER["none"]:
        return source
    raise LayoutError(f"unsupported layer media type '{media_type}'")


def put_layer(layout: Layout, tar: Path, compression: str) -> tuple[Descriptor, str]:
    """Compress an uncompressed tar into a layer blob; returns its descriptor and diff_id."""
    diff = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=layout.root, prefix=".layer-", delete=False) as out:
        with tar.open("rb") as source, _compressor(out, compression, tar.stat().st_size) as sink:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                diff.update(chunk)
                sink.write(chunk)
    return layout.put_file(Path(out.name), LAYER[compression]), "sha256:" + diff.hexdigest()


def put_image(layout: Layout, layers: list[tuple[Descriptor, str]], arch: str, runtime_config: dict,
              created: str) -> Descriptor:
    """Write the config and manifest of a single-arch Linux image; returns the manifest's descriptor."""
    if arch not in PLATFORMS:
        raise LayoutError(f"arch must be one of {', '.join(PLATFORMS)}, got '{arch}'")
    config = {**PLATFORMS[arch], "created": created, "config": runtime_config,
              "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]}}
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": layout.put_json(config, CONFIG).to_json(),
                "layers": [layer.to_json() for layer, _ in layers]}
    return replace(layout.put_json(manifest, MANIFEST), platform=PLATFORMS[arch])


def put_index(layout: Layout, manifests: list[Descriptor]) -> Descriptor:
    """Write an image index over per-platform manifests (each descriptor carries its platform)."""
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [m.to_json() for m in manifests]}
    return layout.put_json(index, INDEX)
