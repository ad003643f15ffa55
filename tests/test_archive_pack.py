"""The archive packer: deterministic gzip by default (any tar unpacks it), zstd on request."""

from __future__ import annotations

import io
import tarfile

import zstandard

from kiln.build_rules.packaging import archive


def pack(tmp_path, name: str, *flags: str) -> bytes:
    (tmp_path / "launcher").write_bytes(b"\x7fELF launcher")
    (tmp_path / "weights").write_bytes(b"w" * 1000)
    output = tmp_path / name
    archive.main(["--output", str(output), *flags, f"m/bin/m={tmp_path / 'launcher'}:x",
                  f"m/weights/m.safetensors={tmp_path / 'weights'}"])
    return output.read_bytes()


def members(data: bytes) -> dict[str, int]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m.mode for m in tar.getmembers()}


def test_default_is_deterministic_gzip(tmp_path):
    first, second = pack(tmp_path, "a.tar.gz"), pack(tmp_path, "b.tar.gz")
    assert first == second
    assert first[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no FNAME: the output's name is not in it
    assert first[4:8] == b"\0\0\0\0" and first[9] == 255  # mtime 0, OS 'unknown' whatever the build host
    assert members(first) == {"m": 0o755, "m/bin": 0o755, "m/bin/m": 0o755, "m/weights": 0o755,
                              "m/weights/m.safetensors": 0o644}


def test_zstd_on_request(tmp_path):
    data = pack(tmp_path, "a.tar.zst", "--compression", "zstd")
    assert data[:4] == b"\x28\xb5\x2f\xfd"
    assert members(zstandard.ZstdDecompressor().decompress(data)) == members(pack(tmp_path, "b.tar.gz"))
