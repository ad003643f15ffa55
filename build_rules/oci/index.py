"""Combine single-arch image layouts into one multi-arch layout: `python -m kiln.build_rules.oci.index`.

    index.py --out mnist-multiarch mnist-image-amd64 mnist-image-arm64

Each input holds one image (as `oci.image` writes it); the output holds their blobs (hard-linked)
and an image index listing each manifest with its platform. Prints the index digest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kiln.build_rules.oci.layout import Descriptor, Layout, LayoutError, put_index


def platform_of(layout: Layout, manifest: Descriptor) -> dict[str, str]:
    """The platform recorded in index.json, else the one in the image config."""
    if manifest.platform:
        return manifest.platform
    config = layout.read_json(Descriptor.from_json(layout.read_json(manifest)["config"]))
    return {key: config[key] for key in ("architecture", "os", "variant") if key in config}


def combine(out: Path, inputs: list[Path], ref_name: str) -> Descriptor:
    layout = Layout.create(out)
    manifests, seen = [], {}
    for path in inputs:
        source = Layout.open(path)
        manifest = source.single_manifest()
        platform = platform_of(source, manifest)
        key = tuple(sorted(platform.items()))
        if key in seen:
            raise LayoutError(f"{path} and {seen[key]} are both {'/'.join(platform.values())}")
        seen[key] = path
        for blob in source.walk(manifest):
            layout.link_blob(source, blob.digest)
        manifests.append(Descriptor(manifest.media_type, manifest.digest, manifest.size, platform))
    index = put_index(layout, manifests)
    layout.set_index([index], ref_name=ref_name)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="layout directory to create (must be absent or empty)")
    parser.add_argument("--ref-name", default="latest", help="org.opencontainers.image.ref.name in index.json")
    parser.add_argument("layouts", nargs="+", help="single-image layouts, one per platform")
    args = parser.parse_args(argv)
    try:
        index = combine(Path(args.out), [Path(p) for p in args.layouts], args.ref_name)
    except (LayoutError, OSError) as e:
        print(f"oci.index: error: {e}", file=sys.stderr)
        return 1
    print(index.digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
