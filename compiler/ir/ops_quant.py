"""QuantizeLinear and DequantizeLinear (per tensor, per axis, blocked). A quantized tensor is held
as f32 levels: every int8/uint8/int16/uint16 level is an exact f32, and onnxruntime's arithmetic
on it (x / scale rounded half to even, plus the zero point, saturated; (q - zero point) * scale)
is f32 too. With a scale or zero point computed at run time, the levels are a uint8/int8 tensor.
Rewritten into elementwise ops by passes/decompose_quant.py, which also makes levels that leave a
QuantizeLinear/DequantizeLinear pair a uint8/int8 tensor."""
from __future__ import annotations

import numpy as np

from .graph import Node, TensorType
from .registry import fail, norm_axis, op


def quant_params(node: Node) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point (f32, zero if absent) shaped to broadcast against the input."""
    x = node.inputs[0].type
    scale = _const(node, 1, "scale").astype(np.float32)
    zp = _const(node, 2, "zero point") if len(node.inputs) > 2 and node.inputs[2] is not None else None
    zp = np.zeros_like(scale) if zp is None else zp.astype(np.float32)
    if scale.ndim == 0 or scale.size == 1 and node.attr("block_size", 0) == 0:
        return scale.reshape(()), zp.reshape(())
    axis = norm_axis(node, node.attr("axis", 1), x.rank)
    block = node.attr("block_size", 0)
    if block:
        if scale.ndim != x.rank or scale.shape[axis] * block < x.shape[axis]:
            raise fail(node, f"scale shape {list(scale.shape)} does not block input {list(x.shape)} "
                             f"by {block} on axis {axis}")
        take = lambda a: np.repeat(a, block, axis)[(slice(None),) * axis + (slice(0, x.shape[axis]),)]  # noqa: E731
        return take(scale), take(zp)
    if scale.shape != (x.shape[axis],):
        raise fail(node, f"per-axis scale has shape {list(scale.shape)}, input axis {axis} has {x.shape[axis]}")
    shape = (-1,) + (1,) * (x.rank - 1 - axis)
    return scale.reshape(shape), zp.reshape(shape)


def _const(node: Node, i: int, what: str) -> np.ndarray:
    v = node.inputs[i]
    if v.const is None:
        raise fail(node, f"the {what} must be a constant (computed scales are not supported)")
    return v.const


def computed(node: Node) -> bool:
    """Scale or zero point computed at run time (DynamicQuantizeLinear's expansion)."""
    return any(v is not None and v.const is None for v in node.inputs[1:3])


# Level ranges held as a real 8-bit tensor (a computed scale, or levels leaving a QDQ pair).
INTEGER_LEVELS = {(0, 255): "u8", (-128, 127): "i8"}


def _computed_type(node: Node) -> TensorType:
    x = node.inputs[0].type
    if any(v is not None and v.type.numel != 1 for v in node.inputs[1:3]):
        raise fail(node, "a computed scale or zero point must be one value (per tensor); per-axis and blocked "
                         "ones must be constant")
    if node.op == "DequantizeLinear":
        return TensorType("f32", x.shape)
    levels = (node.attrs["lo"], node.attrs["hi"])
    if levels not in INTEGER_LEVELS:
        raise fail(node, "with a computed scale, quantizing to uint8 and int8 is supported, not 16 bits")
    return TensorType(INTEGER_LEVELS[levels], x.shape)


def _infer(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    if node.op == "QuantizeLinear" and x.dtype != "f32":
        raise fail(node, f"quantizes f32 input only, got {x.dtype}")
    if computed(node):
        return [_computed_type(node)]
    quant_params(node)
    return [TensorType("f32", x.shape)]


def _quantize(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    scale, zp = quant_params(node)
    q = np.round(xs[0] / scale) + zp
    return [np.clip(q, node.attrs["lo"], node.attrs["hi"]).astype(np.float32)]


def _dequantize(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    scale, zp = quant_params(node)
    return [((xs[0] - zp).astype(np.float32) * scale).astype(np.float32)]


def _flops(node: Node) -> int:
    return 2 * node.outputs[0].type.numel


op("QuantizeLinear", _infer, _quantize, _flops)
op("DequantizeLinear", _infer, _dequantize, _flops)
