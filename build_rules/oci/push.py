"""Push an OCI image layout to a registry: `python -m kiln.build_rules.oci.push`.

    push.py mnist-image --repository 127.0.0.1:5000/mnist --tag v1 --tag latest \\
        [--insecure] [--chunk-size BYTES] [--mount-from other/repo] [--attempts N]

Blobs go first (each checked with HEAD and skipped when present), then manifests and the index by
digest, and the tags only after everything else succeeded: a failed push leaves no tag behind.
Credentials come from docker's config (see `auth`). Plain HTTP only with `--insecure` or for a
loopback registry. Prints a line per blob and a summary on stderr, `REPO@sha256:...` on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kiln.build_rules.oci.auth import AuthError, credentials_for
from kiln.build_rules.oci.layout import INDEX, MANIFEST, Descriptor, Layout, LayoutError
from kiln.build_rules.oci.registry import Reference, RegistryError, Repository, check_tag
from kiln.toolchain.fsio import human_bytes


@dataclass
class Report:
    """Blobs and bytes per status: uploaded, mounted (from --mount-from), skipped (already there)."""
    blobs: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)

    def add(self, status: str, blob: Descriptor) -> None:
        print(f"{status:>8} {blob.digest} {human_bytes(blob.size)}", file=sys.stderr)
        self.blobs[status] += 1
        self.sizes[status] += blob.size

    def __str__(self) -> str:
        return ", ".join(f"{self.blobs[s]} {s} ({human_bytes(self.sizes[s])})" for s in ("uploaded", "mounted", "skipped"))


def push(layout: Layout, repository: Repository, tags: list[str]) -> tuple[str, Report]:
    """Push the layout's one image (or index), tags last; returns its digest and what was uploaded."""
    top = layout.single_manifest()
    blobs = list(layout.walk(top))
    try:
        report = _push_content(layout, repository, blobs)
    except RegistryError as e:
        raise RegistryError(f"{e}; no tag was written") from None
    for tag in tags:
        repository.put_manifest(tag, layout.blob(top.digest).read_bytes(), top.media_type, top.digest)
    return top.digest, report


def _push_content(layout: Layout, repository: Repository, blobs: list[Descriptor]) -> Report:
    """Every blob, then every manifest by digest (children before the index that lists them)."""
    repository.ping()
    report, done = Report(), set()
    for blob in blobs:
        if blob.media_type not in (MANIFEST, INDEX) and blob.digest not in done:
            report.add(repository.push_blob(layout.blob(blob.digest), blob), blob)
            done.add(blob.digest)
    for manifest in (b for b in blobs if b.media_type in (MANIFEST, INDEX)):
        repository.put_manifest(manifest.digest, layout.blob(manifest.digest).read_bytes(), manifest.media_type,
                                manifest.digest)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layout", help="OCI image layout holding one image or one index")
    parser.add_argument("--repository", help="HOST[:PORT]/NAME")
    parser.add_argument("--tag", action="append", default=[], help="tag to point at the image (repeatable)")
    # What an oci_push target's attributes say; --repository and --tag given by the user replace them.
    parser.add_argument("--default-repository", help=argparse.SUPPRESS)
    parser.add_argument("--default-tag", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--insecure", action="store_true", help="plain HTTP to a non-loopback registry")
    parser.add_argument("--chunk-size", type=int, default=16 << 20, help="blobs larger than this go in PATCH chunks")
    parser.add_argument("--mount-from", help="repository on the same registry to mount existing blobs from")
    parser.add_argument("--attempts", type=int, default=4, help="tries per request on 5xx and connection errors")
    args = parser.parse_args(argv)
    repository_name = args.repository or args.default_repository
    if not repository_name:
        print("oci.push: error: no repository: pass --repository HOST[:PORT]/NAME", file=sys.stderr)
        return 1
    try:
        reference = Reference.parse(repository_name)
        tags = [check_tag(t) for t in (args.tag or args.default_tag)]
        if args.mount_from:
            Reference.parse(f"{reference.host}/{args.mount_from}")
        repository = Repository(reference, credentials_for(reference.host), insecure=args.insecure,
                                chunk_size=max(args.chunk_size, 1), attempts=max(args.attempts, 1),
                                mount_from=args.mount_from)
        digest, report = push(Layout.open(Path(args.layout)), repository, tags)
    except (RegistryError, AuthError, LayoutError, OSError) as e:
        print(f"oci.push: error: {e}", file=sys.stderr)
        return 1
    print(f"blobs: {report}; tags: {', '.join(tags) or 'none'}", file=sys.stderr)
    print(f"{reference}@{digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
