"""The files a compile writes: weights.safetensors (64-byte aligned data section and tensors)
and manifest.json. Both are byte-for-byte deterministic."""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from kiln.toolchain.fsio import atomic_write_files

from .ir.weights import ALIGN, WeightTable

ST_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32",
             np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8"}
DTYPE_NAMES = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64", np.dtype(np.int32): "i32",
               np.dtype(np.int8): "i8", np.dtype(np.uint8): "u8", np.dtype(np.bool_): "bool"}


def weight_records(table: WeightTable) -> list[dict]:
    return [{"name": name, "dtype": DTYPE_NAMES[data.dtype], "shape": list(data.shape),
             "offset": offset, "nbytes": data.nbytes,
             "sha256": hashlib.sha256(_bytes_of(data)).hexdigest()}
            for name, (data, offset) in table.tensors.items()]


def safetensors_bytes(table: WeightTable) -> tuple[bytearray, int]:
    """The file and the byte offset of its data section. Gaps between aligned tensors are
    covered by small U8 padding tensors, since safetensors allows no holes. Each tensor is copied
    once, straight into the file's buffer."""
    header: dict[str, dict] = {"__metadata__": {"format": "kiln"}}
    pos, pads = 0, 0
    for name, (data, offset) in table.tensors.items():
        if offset > pos:
            header[f"__pad{pads}"] = {"dtype": "U8", "shape": [offset - pos], "data_offsets": [pos, offset]}
            pads += 1
        header[name] = {"dtype": ST_DTYPES[data.dtype], "shape": list(data.shape),
                        "data_offsets": [offset, offset + data.nbytes]}
        pos = offset + data.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % ALIGN)
    start = 8 + len(text)
    out = bytearray(start + pos)
    out[:start] = struct.pack("<Q", len(text)) + text
    for data, offset in table.tensors.values():
        out[start + offset:start + offset + data.nbytes] = _bytes_of(data)
    return out, start


def _bytes_of(data: np.ndarray) -> memoryview:
    # reshape(-1) first: memoryview refuses to cast a view with a zero in its shape
    return memoryview(np.ascontiguousarray(data).reshape(-1)).cast("B")


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def write_files(outdir: Path, files: dict[str, bytes]) -> None:
    """Write a compile's outputs, each through a temp file and a rename (never half-written)."""
    outdir.mkdir(parents=True, exist_ok=True)
    atomic_write_files(outdir, files)
