"""The glibc base layer, from unpacked pinned Debian packages: `python -m kiln.build_rules.oci.base_layer`.

    base_layer.py --arch amd64 --libstdcxx --output base-amd64.tar \\
        $(python -m kiln.toolchain.fetch libc6 libgcc-s1 libstdc++6 --arch amd64)

Keeps only what a dynamically linked launcher needs: the loader, libc, libm, libpthread, libdl,
librt (when the package still ships them), libgcc_s and, with `--libstdcxx`, libstdc++. No docs,
locales or gconv. Laid out as Debian does with usrmerge: files under `usr/lib/<triplet>/`,
`lib -> usr/lib`, `lib64 -> usr/lib64`, and the loader symlink from the package
(`/lib64/ld-linux-x86-64.so.2`, `/lib/ld-linux-aarch64.so.1`). Writes an uncompressed
deterministic tar for `oci.image --layer-tar`.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from pathlib import Path

from kiln.build_rules.packaging.tar import Entry, write_tar
from kiln.toolchain.fsio import atomic_path

TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
LIBRARIES = ("ld-linux-*.so.*", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
             "libgcc_s.so.1")
LIBSTDCXX = ("libstdc++.so.6", "libstdc++.so.6.0.*")
MERGED = ("lib", "lib64")  # top-level directories usrmerge moves under usr/


class BaseLayerError(Exception):
    """The package trees lack a file the base layer needs, or disagree about one."""


def merged_path(relative: str) -> str:
    """Where a package path lives on a usrmerged system: lib/x -> usr/lib/x."""
    top = relative.split("/", 1)[0]
    return f"usr/{relative}" if top in MERGED else relative


def wanted(path: str, arch: str, libstdcxx: bool) -> bool:
    directory, _, name = path.rpartition("/")
    if directory not in (f"usr/lib/{TRIPLETS[arch]}", "usr/lib", "usr/lib64"):
        return False
    patterns = LIBRARIES + (LIBSTDCXX if libstdcxx else ())
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def tree_entries(tree: Path) -> dict[str, Entry]:
    """Every file and symlink of one unpacked package, keyed by its usrmerged path."""
    entries = {}
    for directory, subdirectories, names in os.walk(tree):
        for name in names + [d for d in subdirectories if os.path.islink(os.path.join(directory, d))]:
            source = Path(directory, name)
            path = merged_path(source.relative_to(tree).as_posix())
            if source.is_symlink():
                entries[path] = Entry(path, link=os.readlink(source))
            else:
                entries[path] = Entry(path, source, executable=os.access(source, os.X_OK))
    return entries


def base_entries(trees: list[Path], arch: str, libstdcxx: bool = False) -> list[Entry]:
    """Layer entries for the loader and runtime libraries found in `trees` (unpacked .debs)."""
    if arch not in TRIPLETS:
        raise BaseLayerError(f"arch must be one of {', '.join(TRIPLETS)}, got '{arch}'")
    kept: dict[str, Entry] = {}
    for tree in trees:
        for path, entry in tree_entries(tree).items():
            if wanted(path, arch, libstdcxx):
                if path in kept:
                    raise BaseLayerError(f"{path} is in more than one package tree")
                kept[path] = entry
    names = {path.rpartition("/")[2] for path in kept}
    required = ["libc.so.6", *(["libstdc++.so.6"] if libstdcxx else [])]
    missing = [name for name in required if name not in names]
    if missing or not any(fnmatch.fnmatchcase(n, "ld-linux-*") for n in names):
        raise BaseLayerError(f"no {', '.join(missing) or 'dynamic loader'} in {', '.join(map(str, trees))}")
    links = [Entry(top, link=f"usr/{top}") for top in MERGED if any(p.startswith(f"usr/{top}/") for p in kept)]
    return sorted([*kept.values(), *links])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(TRIPLETS), default="amd64")
    parser.add_argument("--libstdcxx", action="store_true", help="also keep libstdc++.so.6")
    parser.add_argument("--output", required=True, help="uncompressed tar to write")
    parser.add_argument("trees", nargs="+", help="unpacked .deb trees (libc6, libgcc-s1, libstdc++6)")
    args = parser.parse_args(argv)
    try:
        entries = base_entries([Path(t) for t in args.trees], args.arch, args.libstdcxx)
    except (BaseLayerError, OSError) as e:
        print(f"oci.base_layer: error: {e}", file=sys.stderr)
        return 1
    with atomic_path(Path(args.output)) as tmp, tmp.open("wb") as out:
        write_tar(entries, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
