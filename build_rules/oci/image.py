"""Build a single-arch OCI image layout without a daemon: `python -m kiln.build_rules.oci.image`.

    image.py --out mnist-image --arch amd64 --compression gzip \\
        --layer-tar base-amd64.tar \\
        --layer app/bin/mnist=kiln-out/.../mnist:x app/weights/mnist.safetensors=kiln-out/.../w.safetensors \\
        --entrypoint=/app/bin/mnist --env PATH=/app/bin --workdir /app \\
        --label org.opencontainers.image.source=... --accelerator cpu --accelerator cuda --expose 8000/tcp

Layers stack in the order given: `--layer-tar TAR` takes an uncompressed tar as is, `--layer
DEST=SOURCE[:x] ...` packs files (`:x` executable) into a deterministic tar, `--split-layers
DEST=SOURCE[:x] ...` packs files into as many tars as it takes to keep each at most 512 MB of file
bytes (in path order; a larger file is cut into DEST.part-000, -001, ... that the launcher maps back
to back), so big weights push and pull in parallel and in pieces a retry can resume. `created` is
`SOURCE_DATE_EPOCH` or 1970-01-01T00:00:00Z. Prints the manifest digest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from kiln.build_rules.oci.layout import LAYER, PLATFORMS, Descriptor, Layout, LayoutError, created_time, put_image, \
    put_layer
from kiln.build_rules.packaging.archive import parse_entry
from kiln.build_rules.packaging.tar import Entry, expand, write_tar

PLATFORMS_LABEL = "dev.kiln.platforms"
SPLIT_LAYER_BYTES = 512 << 20


class _AppendLayer(argparse.Action):
    """Keep `--layer-tar` and `--layer` in one ordered list: layer order is image content."""

    def __call__(self, parser, namespace, values, option_string=None):
        kind = {"--layer-tar": "tar", "--layer": "entries", "--split-layers": "split"}[option_string]
        namespace.layers = [*namespace.layers, (kind, values)]


def pairs(items: list[str], flag: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LayoutError(f"{flag} '{item}': expected KEY=VALUE")
        result[key] = value
    return result


def runtime_config(args: argparse.Namespace) -> dict:
    """The image config's `config` object (what a container runtime starts)."""
    labels = pairs(args.label, "--label")
    if args.accelerator:
        labels[PLATFORMS_LABEL] = ",".join(sorted(set(args.accelerator)))
    env = [f"{key}={value}" for key, value in pairs(args.env, "--env").items()]
    config = {"Entrypoint": args.entrypoint, "Cmd": args.cmd, "Env": env, "WorkingDir": args.workdir,
              "User": args.user, "Labels": labels, "ExposedPorts": {port: {} for port in sorted(args.expose)}}
    return {key: value for key, value in config.items() if value}


def entries_layer(layout: Layout, entries: list[Entry], compression: str) -> tuple[Descriptor, str]:
    with tempfile.NamedTemporaryFile(dir=layout.root, prefix=".tar-", suffix=".tar") as tar:
        write_tar(entries, tar)
        tar.flush()
        return put_layer(layout, Path(tar.name), compression)


def parts(entry: Entry, limit: int) -> list[Entry]:
    """A file over `limit` bytes as NAME.part-000, -001, ... of `limit` bytes each (the launcher maps them
    back to back; `limit` is a whole number of pages)."""
    size = entry.source.stat().st_size
    if size <= limit:
        return [entry]
    return [replace(entry, name=f"{entry.name}.part-{i:03d}", offset=offset, size=min(limit, size - offset))
            for i, offset in enumerate(range(0, size, limit))]


def split(entries: list[Entry], limit: int) -> list[list[Entry]]:
    """Files in path order, larger ones cut into parts, grouped into layers of at most `limit` bytes."""
    groups: list[list[Entry]] = []
    size = 0
    files = sorted(e for entry in entries for e in expand(entry))
    for entry in (part for file in files for part in parts(file, limit)):
        nbytes = entry.size if entry.size is not None else entry.source.stat().st_size
        if not groups or size + nbytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += nbytes
    return groups


def checked_tar(path: Path) -> Path:
    """A compressed tar here would be compressed twice and get a wrong diff_id: refuse it."""
    with path.open("rb") as f:
        header = f.read(512)
    if header[257:262] != b"ustar" and header.strip(b"\0"):
        raise LayoutError(f"{path} is not an uncompressed tar")
    return path


def build(args: argparse.Namespace) -> Descriptor:
    layout = Layout.create(Path(args.out))
    layers = []
    for kind, values in args.layers:
        if kind == "tar":
            layers.append(put_layer(layout, checked_tar(Path(values)), args.compression))
        elif kind == "entries":
            layers.append(entries_layer(layout, [parse_entry(v) for v in values], args.compression))
        else:
            groups = split([parse_entry(v) for v in values], SPLIT_LAYER_BYTES)
            layers += [entries_layer(layout, group, args.compression) for group in groups]
    manifest = put_image(layout, layers, args.arch, runtime_config(args), created_time())
    layout.set_index([manifest], ref_name=args.ref_name)
    return manifest


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="layout directory to create (must be absent or empty)")
    p.add_argument("--arch", choices=sorted(PLATFORMS), default="amd64")
    p.add_argument("--compression", choices=sorted(LAYER), default="gzip")
    p.add_argument("--layer-tar", action=_AppendLayer, dest="layers", metavar="TAR",
                   help="an uncompressed tar, as one layer")
    p.add_argument("--layer", action=_AppendLayer, dest="layers", nargs="+", metavar="DEST=SOURCE[:x]",
                   help="files, as one layer")
    p.add_argument("--split-layers", action=_AppendLayer, dest="layers", nargs="+", metavar="DEST=SOURCE[:x]",
                   help=f"files, as layers of at most {SPLIT_LAYER_BYTES >> 20} MB each")
    p.set_defaults(layers=[])
    p.add_argument("--entrypoint", action="append", default=[], help="one argv element per flag (--entrypoint=X)")
    p.add_argument("--cmd", action="append", default=[], help="one default argument per flag (--cmd=X)")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    p.add_argument("--accelerator", action="append", default=[],
                   help=f"an accelerator platform inside (cpu, cuda, ...), listed in the {PLATFORMS_LABEL} label")
    p.add_argument("--expose", action="append", default=[], metavar="PORT/PROTO", help="a port in ExposedPorts")
    p.add_argument("--workdir", default="")
    p.add_argument("--user", default="")
    p.add_argument("--ref-name", default="latest", help="org.opencontainers.image.ref.name in index.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        manifest = build(args)
    except (LayoutError, OSError) as e:
        print(f"oci.image: error: {e}", file=sys.stderr)
        return 1
    print(manifest.digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
