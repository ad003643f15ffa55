"""Reading initializer data: inline in the ONNX file or from a matching safetensors file."""
from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import CompileError

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32, onnx.TensorProto.BOOL: np.bool_,
    onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8,
}


def onnx_dtype(elem_type: int, what: str) -> np.dtype:
    if elem_type not in ONNX_DTYPES:
        name = onnx.TensorProto.DataType.Name(elem_type)
        raise CompileError(f"{what} has unsupported dtype {name}")
    return np.dtype(ONNX_DTYPES[elem_type])


def inline_weights(model: onnx.ModelProto, model_dir: Path) -> dict[str, np.ndarray]:
    out = {}
    for init in model.graph.initializer:
        try:
            out[init.name] = numpy_helper.to_array(init, base_dir=str(model_dir))
        except (OSError, ValueError, onnx.checker.ValidationError) as e:
            raise CompileError(f"cannot read initializer {init.name}: {e}") from None
    return out


SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": np.uint16,  # bf16: raw bits, widened below
}
# Half-precision weights for an f32 model are widened at build time (exactly: every bf16 and f16
# value is an f32 value), so a checkpoint saved in half precision needs no conversion by the user.
_WIDENED = {"BF16", "F16"}


def read_safetensors(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (safetensors dtype, array) for every tensor; one-line errors for a malformed file."""
    try:
        data = _map(path)
    except OSError as e:
        raise CompileError(f"cannot read {path}: {e.strerror}") from None
    bad = f"invalid safetensors file {path.name}"
    if len(data) < 8:
        raise CompileError(f"{bad}: {len(data)} bytes, shorter than the header length field")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise CompileError(f"{bad}: the header claims {size} bytes, the file has {len(data) - 8} after it")
    try:
        header = json.loads(bytes(data[8:8 + size]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompileError(f"{bad}: the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise CompileError(f"{bad}: the header is not a JSON object")
    body = data[8 + size:]
    return {name: _tensor(name, entry, body, bad) for name, entry in header.items() if name != "__metadata__"}


def _map(path: Path) -> memoryview:
    """The file's bytes, memory-mapped read-only: the weights stay in the page cache, not copied
    onto the heap (a 440 MB checkpoint is read without holding it twice)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))


def _tensor(name: str, entry, body: memoryview, bad: str) -> tuple[str, np.ndarray]:
    try:
        dtype, shape, (start, end) = entry["dtype"], [int(d) for d in entry["shape"]], entry["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise CompileError(f"{bad}: tensor {name} lacks a dtype, shape or data_offsets") from None
    if dtype not in SAFETENSORS_DTYPES:
        raise CompileError(f"{bad}: tensor {name} has dtype {dtype}; kiln reads {', '.join(SAFETENSORS_DTYPES)}")
    item = np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize
    count = int(np.prod(shape, dtype=np.int64))
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(body)) \
            or end - start != count * item or min(shape, default=0) < 0:
        raise CompileError(f"{bad}: tensor {name} has data_offsets [{start}, {end}] that do not hold "
                           f"{shape} {dtype} inside the file's {len(body)} data bytes")
    array = np.frombuffer(body[start:end], SAFETENSORS_DTYPES[dtype]).reshape(shape)
    if dtype == "BF16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return dtype, array


def safetensors_weights(model: onnx.ModelProto, path: Path) -> dict[str, np.ndarray]:
    """Initializers read from `path`; names, dtypes and shapes must match the ONNX declarations."""
    tensors = read_safetensors(path)
    out = {}
    for init in model.graph.initializer:
        if init.name not in tensors:
            raise CompileError(f"weight {init.name} is missing from {path.name}")
        stored, data = tensors[init.name]
        want = onnx_dtype(init.data_type, f"initializer {init.name}")
        if stored in _WIDENED and want == np.float32:
            data = data.astype(np.float32)
        if data.dtype != want:
            raise CompileError(f"weight {init.name} in {path.name} has dtype {stored}, "
                               f"the model expects {want}")
        if tuple(data.shape) != tuple(init.dims):
            raise CompileError(f"weight {init.name} in {path.name} has shape {list(data.shape)}, "
                               f"the model expects {list(init.dims)}")
        out[init.name] = data
    extra = sorted(set(tensors) - set(out))
    if extra:
        raise CompileError(f"weight {extra[0]} in {path.name} is not an initializer of the model")
    return out
