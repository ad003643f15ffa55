"""Reading initializer data: inline in the ONNX file or from a matching safetensors file."""
from __future__ import annotations

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
        except (OSError, ValueError) as e:
            raise CompileError(f"cannot read initializer {init.name}: {e}") from None
    return out


def safetensors_weights(model: onnx.ModelProto, path: Path) -> dict[str, np.ndarray]:
    """Initializers read from `path`; names, dtypes and shapes must match the ONNX declarations."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CompileError(f"invalid safetensors file {path.name}: {first}") from None
    out = {}
    for init in model.graph.initializer:
        if init.name not in tensors:
            raise CompileError(f"weight {init.name} is missing from {path.name}")
        data = tensors[init.name]
        want = onnx_dtype(init.data_type, f"initializer {init.name}")
        if data.dtype != want:
            raise CompileError(f"weight {init.name} in {path.name} has dtype {data.dtype}, "
                               f"the model expects {want}")
        if tuple(data.shape) != tuple(init.dims):
            raise CompileError(f"weight {init.name} in {path.name} has shape {list(data.shape)}, "
                               f"the model expects {list(init.dims)}")
        out[init.name] = data
    extra = sorted(set(tensors) - set(out))
    if extra:
        raise CompileError(f"weight {extra[0]} in {path.name} is not an initializer of the model")
    return out
