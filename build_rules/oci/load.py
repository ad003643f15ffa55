"""A `docker load` tarball from a layout, loaded when a daemon is there: `python -m kiln.build_rules.oci.load`.

    load.py mnist-image --tag mnist:latest --output mnist.tar [--arch arm64] [--no-daemon]

The tarball is both formats docker reads: `manifest.json` (Config, RepoTags, Layers) for the
classic image store and an OCI layout (`oci-layout`, `index.json`, `blobs/`) for the containerd
store. Layers are stored uncompressed, so their digests are their diff_ids, and the image id is the
config digest, as `docker load` reports it. From a multi-arch layout, `--arch` (default: this
machine's) picks the image. With a reachable daemon (docker SDK, `DOCKER_HOST`) the tarball is
loaded and the image id printed; without one, a message and the tarball path.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from kiln.build_rules.oci.layout import CHUNK, INDEX, LAYER, MANIFEST, Descriptor, Layout, LayoutError, \
    canonical_json, decompressed
from kiln.build_rules.packaging.tar import Entry, write_tar
from kiln.toolchain.fsio import atomic_path

MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def pick_manifest(layout: Layout, arch: str) -> Descriptor:
    top = layout.single_manifest()
    if top.media_type == MANIFEST:
        return top
    if top.media_type != INDEX:
        raise LayoutError(f"unsupported manifest media type '{top.media_type}'")
    for entry in layout.read_json(top)["manifests"]:
        child = Descriptor.from_json(entry)
        if (child.platform or {}).get("architecture") == arch:
            return child
    raise LayoutError(f"{layout.root} has no image for {arch}")


def uncompressed_layer(layout: Layout, staged: Layout, layer: Descriptor, diff_id: str) -> None:
    """Store `layer` uncompressed in `staged` under its diff_id, checking that it matches."""
    with tempfile.NamedTemporaryFile(dir=staged.root, prefix=".layer-", delete=False) as out:
        with layout.blob(layer.digest).open("rb") as source, decompressed(source, layer.media_type) as tar:
            shutil.copyfileobj(tar, out, CHUNK)
    stored = staged.put_file(Path(out.name), LAYER["none"])
    if stored.digest != diff_id:
        raise LayoutError(f"layer {layer.digest} decompresses to {stored.digest}, but the config says {diff_id}")


def split_tag(tag: str) -> tuple[str, str]:
    """"mnist" -> ("mnist", "latest"); "host:5000/mnist:v1" -> ("host:5000/mnist", "v1")."""
    name, sep, version = tag.rpartition(":")
    return (name, version) if sep and "/" not in version else (tag, "latest")


def stage(layout: Layout, manifest: Descriptor, tag: str, staging: Path) -> str:
    """Lay out the tarball's files under `staging`; returns the image id (the config digest)."""
    staged = Layout.create(staging)
    body = layout.read_json(manifest)
    config = Descriptor.from_json(body["config"])
    diff_ids = layout.read_json(config)["rootfs"]["diff_ids"]
    for layer, diff_id in zip(body["layers"], diff_ids, strict=True):
        uncompressed_layer(layout, staged, Descriptor.from_json(layer), diff_id)
    staged.link_blob(layout, config.digest)
    layers = [Descriptor(LAYER["none"], d, staged.blob(d).stat().st_size).to_json() for d in diff_ids]
    name, version = split_tag(tag)
    staged.set_index([staged.put_json({**body, "layers": layers}, MANIFEST)], ref_name=version)
    docker_manifest = [{"Config": f"blobs/sha256/{config.digest[7:]}", "RepoTags": [f"{name}:{version}"],
                        "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]}]
    (staging / "manifest.json").write_bytes(canonical_json(docker_manifest))
    return config.digest


def write_tarball(layout: Layout, tag: str, arch: str, output: Path) -> str:
    """Write the `docker load` tarball to `output`; returns the image id."""
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".load-") as staging:
        root = Path(staging) / "image"
        image_id = stage(layout, pick_manifest(layout, arch), tag, root)
        entries = [Entry(path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file()]
        with atomic_path(output) as tmp, tmp.open("wb") as out:
            write_tar(entries, out)
    return image_id


class DockerError(Exception):
    """The daemon refused the tarball."""


class NoDaemon(DockerError):
    """No Docker daemon answers through the docker SDK."""


def load_into_docker(tarball: Path) -> list[str]:
    """Load the tarball into the daemon `DOCKER_HOST` names; returns the loaded image ids."""
    try:
        import docker
        import requests
    except ImportError as e:
        raise NoDaemon(f"the docker Python SDK is not installed ({e})") from None
    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as e:
        raise NoDaemon(str(e).splitlines()[0][:200]) from None
    try:
        with tarball.open("rb") as data:
            return [image.id for image in client.images.load(data)]
    except (docker.errors.DockerException, requests.RequestException) as e:
        raise DockerError(f"docker refused {tarball}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layout", help="OCI image layout holding one image or one index")
    parser.add_argument("--tag", required=True, help="name:tag the loaded image gets")
    parser.add_argument("--output", required=True, help="tarball to write")
    parser.add_argument("--arch", default=MACHINES.get(platform.machine(), "amd64"), help="image to pick from an index")
    parser.add_argument("--no-daemon", action="store_true", help="only write the tarball")
    args = parser.parse_args(argv)
    output = Path(args.output).absolute()
    try:
        image_id = write_tarball(Layout.open(Path(args.layout)), args.tag, args.arch, output)
    except (LayoutError, OSError, ValueError, KeyError) as e:
        print(f"oci.load: error: {e}", file=sys.stderr)
        return 1
    if args.no_daemon:
        print(output)
        return 0
    try:
        loaded = load_into_docker(output)
    except NoDaemon as e:
        print(f"oci.load: no Docker daemon reachable ({e}); wrote image {image_id} to {output}; "
              f"load it with: docker load -i {output}", file=sys.stderr)
        print(output)
        return 0
    except DockerError as e:
        print(f"oci.load: error: {e}", file=sys.stderr)
        return 1
    print(f"loaded {args.tag}: {', '.join(loaded) or image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
