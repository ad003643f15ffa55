"""Move pins in `toolchain/lock.toml` to the newest version the ordinary clients offer.

    python -m kiln.toolchain.lock --update libhsa-runtime64-1 --update libtpu

For every architecture NAME is pinned for: a .deb takes the newest version in its suite (`apt-cache
madison` on kiln's own lists, toolchain/apt_sources.py) and is downloaded with `apt-get download`; a
wheel takes the newest `pip download` for the architecture's manylinux tags. The downloaded bytes give the new file name, size and sha256; nothing else in the
lock file changes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kiln.toolchain import debian, wheels
from kiln.toolchain.errors import FetchError
from kiln.toolchain.fetch import sha256_file
from kiln.toolchain.lockfile import DEFAULT_LOCK, Artifact, LockError, load, rewrite_pin


def update_pin(name: str, lock_path: Path = DEFAULT_LOCK) -> list[Artifact]:
    """Re-pin every architecture of `name` to the newest available version; returns the new pins."""
    pins = [a for a in load(lock_path).artifacts if a.name == name]
    if not pins:
        raise LockError(f"{name} is not in {lock_path.name}")
    updated = [_newest(artifact) for artifact in pins]
    for artifact in updated:
        rewrite_pin(lock_path, artifact)
    return updated


def _newest(artifact: Artifact) -> Artifact:
    with tempfile.TemporaryDirectory(prefix="kiln-lock-") as scratch:
        if artifact.kind in ("deb", "dsc"):
            version = debian.candidate(artifact)
            download = debian.download if artifact.kind == "deb" else debian.download_source
            file = download(artifact.pinned(version, "", 0, ""), Path(scratch))
        else:
            file = wheels.download_newest(artifact.name, artifact.arch, Path(scratch))
            version = file.name.split("-")[1]
        return artifact.pinned(version, file.name, file.stat().st_size, sha256_file(file))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.toolchain.lock", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="append", required=True, metavar="NAME", help="artifact to re-pin")
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="lock file (default: kiln's own)")
    args = parser.parse_args(argv)
    try:
        for name in args.update:
            for artifact in update_pin(name, args.lock):
                print(f"{artifact.name} {artifact.arch}: {artifact.version} sha256:{artifact.sha256}")
    except FetchError as e:
        print(f"lock: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
