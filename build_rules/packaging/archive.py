"""Pack a deterministic, compressed tarball: `python -m kiln.build_rules.packaging.archive`.

    archive.py --output mnist.tar.gz --compression gzip \\
        mnist/bin/mnist=kiln-out/.../mnist:x mnist/weights/mnist.safetensors=kiln-out/.../weights.safetensors

Each argument is DEST=SOURCE, with `:x` for an executable. Same inputs, same bytes (gzip: no file name, mtime 0, a fixed OS byte).
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from pathlib import Path

from kiln.build_rules.packaging.tar import Entry, write_tar
from kiln.toolchain.fsio import atomic_write

ZSTD_LEVEL = 9  # 19 takes minutes on a 470 MB vendor runtime for a few % smaller output
GZIP_LEVEL = 6  # zlib's default: -9 takes ~2x as long on vendor runtimes for ~1% smaller output


def compress(data: bytes, compression: str) -> bytes:
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(data)
    if compression == "gzip":
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=GZIP_LEVEL) as f:
            f.write(data)
        return buffer.getvalue()
    return data


def parse_entry(text: str) -> Entry:
    dest, sep, source = text.partition("=")
    if not sep or not dest or dest.startswith("/"):
        raise SystemExit(f"archive: bad entry '{text}': expected DEST=SOURCE[:x]")
    executable = source.endswith(":x")
    return Entry(dest, Path(source.removesuffix(":x")), executable)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True)
    parser.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    parser.add_argument("entries", nargs="+")
    args = parser.parse_args(argv)
    tar = io.BytesIO()
    write_tar([parse_entry(e) for e in args.entries], tar)
    atomic_write(Path(args.output), compress(tar.getvalue(), args.compression))
    return 0


if __name__ == "__main__":
    sys.exit(main())
