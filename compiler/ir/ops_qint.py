"""Integer quantized ops on real uint8/int8 tensors: MatMulInteger ((A - a_zp) @ (B - b_zp) in int32)
and QLinearMatMul (that product requantized: round(acc * a_scale * b_scale / y_scale) + y_zp,
saturated); ConvInteger and QLinearConv alike for 2-D convolutions (grouped and depthwise too).
Rewritten into Cast, Sub, Pad, Slice, f32 MatMul and Conv by passes/decompose_qint.py."""
from __future__ import annotations

import numpy as np

from .graph import Node, TensorType, Value
from .ops_nn import _matmul_shapes, window
from .registry import fail, op

EIGHT_BITS = ("u8", "i8")
# Products of centred 8-bit values summed in f32 are exact up to this many (passes/decompose_qint.py).
K_CHUNK = (1 << 24) // (255 * 255)  # 258
LEVELS = {"u8": (0, 255), "i8": (-128, 127)}


def zero_point(node: Node, i: int, of: Value, per_column: bool) -> Value | None:
    """Zero point input i of the 8-bit operand `of`, checked: same dtype, and one value, or (for B)
    one per column ([N], or [..., 1, N] broadcasting against B). A per-row zero point of A is
    refused: onnxruntime and onnx's reference have none, and numpy broadcasting would misread it."""
    zp = node.inputs[i] if len(node.inputs) > i else None
    if zp is None:
        return None
    if zp.type.dtype != of.type.dtype:
        raise fail(node, f"zero point {zp.name} is {zp.type.dtype}, its operand {of.name} is {of.type.dtype}")
    try:
        fits = zp.type.numel == 1 or (per_column and np.broadcast_shapes(zp.type.shape, of.type.shape) == of.type.shape
                                      and zp.type.shape[-1:] == of.type.shape[-1:])
    except ValueError:
        fits = False
    if not fits:
        what = "one value or one per column" if per_column else "one value (per tensor)"
        raise fail(node, f"zero point {zp.name} of shape {list(zp.type.shape)} is not supported for "
                         f"{of.name} of shape {list(of.type.shape)}: {what} is")
    return zp


def zero_point_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One value as a scalar, so that it never adds dimensions to its operand."""
    return () if int(np.prod(shape)) == 1 else tuple(shape)


def _operands(node: Node, a: int, b: int) -> tuple[Value, Value]:
    x, y = node.inputs[a], node.inputs[b]
    for v in (x, y):
        if v.type.dtype not in EIGHT_BITS:
            raise fail(node, f"input {v.name} is {v.type.dtype}; supported: uint8, int8")
    return x, y


def _infer_matmul_integer(node: Node) -> list[TensorType]:
    a, b = _operands(node, 0, 1)
    zero_point(node, 2, a, per_column=False)
    zero_point(node, 3, b, per_column=True)
    return [TensorType("i32", _matmul_shapes(node, a.type.shape, b.type.shape))]


def _centered(x: np.ndarray, zp: np.ndarray | None) -> np.ndarray:
    x = x.astype(np.int64)
    return x if zp is None else x - zp.astype(np.int64).reshape(zero_point_shape(zp.shape))


def integer_product(a: np.ndarray, b: np.ndarray, a_zp: np.ndarray | None, b_zp: np.ndarray | None) -> np.ndarray:
    return np.matmul(_centered(a, a_zp), _centered(b, b_zp)).astype(np.int32)


def _matmul_integer(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    a, b, a_zp, b_zp = xs + [None] * (4 - len(xs))
    return [integer_product(a, b, a_zp, b_zp)]


def _scale(node: Node, i: int, per: int) -> None:
    s = node.inputs[i]
    if s.type.dtype != "f32":
        raise fail(node, f"scale {s.name} is {s.type.dtype}; supported: float32")
    if s.type.numel != 1 and s.type.shape not in ((per,), (1, per)):
        raise fail(node, f"scale {s.name} of shape {list(s.type.shape)} is neither per tensor nor per column")


def _infer_qlinear_matmul(node: Node) -> list[TensorType]:
    a, b = _operands(node, 0, 3)
    zero_point(node, 2, a, per_column=False)
    zero_point(node, 5, b, per_column=True)
    y_zp = node.inputs[7]
    n = b.type.shape[-1]
    for i, per in ((1, 1), (4, n), (6, 1)):
        _scale(node, i, per)
    if y_zp.type.dtype not in EIGHT_BITS or y_zp.type.numel != 1:
        raise fail(node, f"output zero point {y_zp.name} must be one uint8 or int8 value")
    return [TensorType(y_zp.type.dtype, _matmul_shapes(node, a.type.shape, b.type.shape))]


def requantize(acc: np.ndarray, multiplier: np.ndarray, zp: np.ndarray, dtype: str) -> np.ndarray:
    """round(acc * multiplier) + zp saturated to the 8-bit type, all in f32 as onnxruntime."""
    lo, hi = LEVELS[dtype]
    y = np.round(acc.astype(np.float32) * multiplier) + zp.astype(np.float32)
    return np.clip(y, lo, hi).astype(np.uint8 if dtype == "u8" else np.int8)


def _qlinear_matmul(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = xs
    multiplier = a_s.astype(np.float32) * b_s.astype(np.float32).reshape(-1) / y_s.astype(np.float32)
    return [requantize(integer_product(a, b, a_zp, b_zp), multiplier, y_zp, node.outputs[0].type.dtype)]


def conv_geometry(node: Node, x: Value, w: Value) -> Node:
    """The plain Conv with node's attributes whose window (ops_nn.window) ConvInteger/QLinearConv take."""
    g = node.attr("group", 1)
    if (x.type.rank != 4 or w.type.rank != 4 or x.type.shape[1] != w.type.shape[1] * g
            or w.type.shape[0] % g):
        raise fail(node, f"2-D convolutions of 8-bit [N, C, H, W] by [M, C/group, kH, kW] are supported, got "
                         f"{list(x.type.shape)} by {list(w.type.shape)} in {g} group(s)")
    if g > 1 and w.type.shape[1] > K_CHUNK:
        raise fail(node, f"{x.type.shape[1]} input channels in {g} groups: at most {K_CHUNK} per group are supported")
    return Node("Conv", node.name, [x, w], node.outputs, dict(node.attrs))


def _conv_shape(node: Node, x: Value, w: Value) -> tuple[int, ...]:
    return (x.type.shape[0], w.type.shape[0], *window(conv_geometry(node, x, w)).out)


def _infer_conv_integer(node: Node) -> list[TensorType]:
    x, w = _operands(node, 0, 1)
    zero_point(node, 2, x, per_column=False)
    _weight_zero_point(node, 3, w)
    return [TensorType("i32", _conv_shape(node, x, w))]


def _weight_zero_point(node: Node, i: int, w: Value) -> None:
    zp = node.inputs[i] if len(node.inputs) > i else None
    if zp is not None and (zp.type.dtype != w.type.dtype or zp.type.numel not in (1, w.type.shape[0])):
        raise fail(node, f"weight zero point {zp.name} must be {w.type.dtype}, one value or one per output channel")


def _infer_qlinear_conv(node: Node) -> list[TensorType]:
    x, w = _operands(node, 0, 3)
    m = w.type.shape[0]
    for i, per in ((1, 1), (4, m), (6, 1)):
        _scale(node, i, per)
    if node.inputs[2].type.numel != 1 or node.inputs[2].type.dtype != x.type.dtype:
        raise fail(node, f"the input's zero point must be one {x.type.dtype} value (per tensor)")
    _weight_zero_point(node, 5, w)
    y_zp = node.inputs[7]
    if y_zp.type.dtype not in EIGHT_BITS or y_zp.type.numel != 1:
        raise fail(node, f"output zero point {y_zp.name} must be one uint8 or int8 value")
    bias = node.inputs[8] if len(node.inputs) > 8 else None
    if bias is not None and (bias.type.dtype != "i32" or bias.type.shape != (m,)):
        raise fail(node, f"bias {bias.name} must be int32 of shape [{m}]")
    return [TensorType(y_zp.type.dtype, _conv_shape(node, x, w))]


def _conv_flops(node: Node) -> int:
    w = node.inputs[1 if node.op == "ConvInteger" else 3].type.shape
    return 2 * node.outputs[0].type.numel * int(np.prod(w[1:]))


def _flops(node: Node) -> int:
    a = node.inputs[0].type
    return 2 * node.outputs[0].type.numel * a.shape[-1]


op("MatMulInteger", _infer_matmul_integer, _matmul_integer, _flops)
op("QLinearMatMul", _infer_qlinear_matmul, _qlinear_matmul, _flops)
op("ConvInteger", _infer_conv_integer, flops=_conv_flops)
op("QLinearConv", _infer_qlinear_conv, flops=_conv_flops)
