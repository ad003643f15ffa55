"""Elementwise ops (unary, binary with numpy broadcasting, comparisons and logic, Where, Cast)."""
from __future__ import annotations

import math

import numpy as np

from .graph import DTYPES, Node, TensorType
from .registry import broadcast_shapes, const_input, fail, op


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))


UNARY = {
    "Relu": lambda n, x: np.maximum(x, 0),
    "Sigmoid": lambda n, x: 1 / (1 + np.exp(-x)),
    "Tanh": lambda n, x: np.tanh(x),
    "Erf": lambda n, x: _erf(x),
    "Gelu": lambda n, x: _gelu(x, n.attr("approximate", "none")),
    "Sqrt": lambda n, x: np.sqrt(x),
    "Exp": lambda n, x: np.exp(x),
    "Log": lambda n, x: np.log(x),
    "Neg": lambda n, x: -x,
    "Abs": lambda n, x: np.abs(x),
    "Identity": lambda n, x: x,
    "HardSigmoid": lambda n, x: np.clip(n.attr("alpha", 0.2) * x + n.attr("beta", 0.5), 0, 1),
    "HardSwish": lambda n, x: x * np.clip(x / 6 + 0.5, 0, 1),
    "Cast": lambda n, x: x.astype(DTYPES[n.attrs["to"]]),
}

# Sin, Cos, Atan, Floor, Ceil and Round are lowered by every backend; the rest are rewritten
# into them, Exp, Log, Sqrt and arithmetic (passes/decompose_math.py).
MATH = {
    "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan,
    "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh, "Atanh": np.arctanh,
    "Floor": np.floor, "Ceil": np.ceil, "Round": np.round,
}
UNARY.update({name: (lambda n, x, f=fn: f(x)) for name, fn in MATH.items()})

BINARY = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Pow": np.power,
    "Max": np.maximum, "Min": np.minimum,
    "Div": lambda a, b: (np.trunc(a / b) if a.dtype.kind == "i" else a / b),
}

COMPARE = {
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal,
}
LOGIC = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}

FLOAT_ONLY = {"Sigmoid", "Tanh", "Erf", "Gelu", "Sqrt", "Exp", "Log", "HardSigmoid", "HardSwish", *MATH}


def _infer_unary(node: Node) -> list[TensorType]:
    t = node.inputs[0].type
    if node.op == "Cast":
        return [TensorType(node.attrs["to"], t.shape)]
    if node.op in FLOAT_ONLY and t.dtype != "f32":
        raise fail(node, f"expects f32 input, got {t.dtype}")
    return [t]


def _infer_binary(node: Node) -> list[TensorType]:
    a, b = node.inputs[0].type, node.inputs[1].type
    if a.dtype != b.dtype and node.op != "Pow":
        raise fail(node, f"input dtypes differ ({a.dtype} and {b.dtype})")
    return [TensorType(a.dtype, broadcast_shapes(node, a.shape, b.shape))]


def _infer_compare(node: Node) -> list[TensorType]:
    shape = _infer_binary(node)[0].shape
    if node.op in LOGIC and node.inputs[0].type.dtype != "bool":
        raise fail(node, f"expects bool inputs, got {node.inputs[0].type.dtype}")
    if node.op == "Equal" or node.op in LOGIC or node.inputs[0].type.dtype != "bool":
        return [TensorType("bool", shape)]
    raise fail(node, "cannot order bool inputs")


def _infer_not(node: Node) -> list[TensorType]:
    t = node.inputs[0].type
    if t.dtype != "bool":
        raise fail(node, f"expects a bool input, got {t.dtype}")
    return [t]


def _infer_where(node: Node) -> list[TensorType]:
    c, x, y = (v.type for v in node.inputs)
    if c.dtype != "bool":
        raise fail(node, f"expects a bool condition, got {c.dtype}")
    if x.dtype != y.dtype:
        raise fail(node, f"input dtypes differ ({x.dtype} and {y.dtype})")
    return [TensorType(x.dtype, broadcast_shapes(node, c.shape, x.shape, y.shape))]


def _numel_flops(node: Node) -> int:
    return node.outputs[0].type.numel


for _name, _fn in UNARY.items():
    op(_name, _infer_unary, lambda n, xs, f=_fn: [np.asarray(f(n, xs[0]))], _numel_flops)
for _name, _fn in BINARY.items():
    op(_name, _infer_binary,
       lambda n, xs, f=_fn: [np.asarray(f(xs[0], xs[1])).astype(xs[0].dtype)], _numel_flops)
for _name, _fn in {**COMPARE, **LOGIC}.items():
    op(_name, _infer_compare, lambda n, xs, f=_fn: [np.asarray(f(xs[0], xs[1]))], _numel_flops)
op("Not", _infer_not, lambda n, xs: [np.logical_not(xs[0])], _numel_flops)
op("Where", _infer_where, lambda n, xs: [np.where(xs[0], xs[1], xs[2])], _numel_flops)



def _infer_cast_like(node: Node) -> list[TensorType]:
    return [TensorType(node.inputs[1].type.dtype, node.inputs[0].type.shape)]


def _infer_trilu(node: Node) -> list[TensorType]:
    if node.inputs[0].type.rank < 2:
        raise fail(node, f"needs a tensor of rank 2 or more, got rank {node.inputs[0].type.rank}")
    return [node.inputs[0].type]


def trilu_mask(node: Node) -> np.ndarray:
    """The [rows, cols] positions Trilu keeps: on and above (upper) or below (lower) diagonal k."""
    k = const_input(node, 1, "k")
    rows, cols = node.inputs[0].type.shape[-2:]
    keep = np.triu if node.attr("upper", 1) else np.tril
    return keep(np.ones((rows, cols), np.bool_), int(k.ravel()[0]) if k is not None else 0)


def _infer_mod(node: Node) -> list[TensorType]:
    if node.inputs[0].type.dtype == "bool":
        raise fail(node, "expects numbers, got bool")
    return _infer_binary(node)


def _eval_mod(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.fmod(xs[0], xs[1]) if node.attr("fmod", 0) else np.mod(xs[0], xs[1])]


# Rewritten from integer Div, Mul, Sub and Where (passes/decompose.py).
op("Mod", _infer_mod, _eval_mod, _numel_flops)

# Rewritten to Cast and Where (passes/decompose.py) once their operands' types are known.
op("CastLike", _infer_cast_like, lambda n, xs: [xs[0].astype(xs[1].dtype)], _numel_flops)
op("Trilu", _infer_trilu, lambda n, xs: [np.where(trilu_mask(n), xs[0], np.zeros((), xs[0].dtype))], _numel_flops)

BITWISE = {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or, "BitwiseXor": np.bitwise_xor}


def _infer_bitwise(node: Node) -> list[TensorType]:
    if node.inputs[0].type.dtype not in ("i64", "i32", "i8", "u8"):
        raise fail(node, f"expects integer inputs, got {node.inputs[0].type.dtype}")
    return _infer_binary(node) if len(node.inputs) == 2 else [node.inputs[0].type]


for _name, _fn in BITWISE.items():
    op(_name, _infer_bitwise, lambda n, xs, f=_fn: [f(xs[0], xs[1])], _numel_flops)
op("BitwiseNot", _infer_bitwise, lambda n, xs: [np.invert(xs[0])], _numel_flops)


def _bit_shift(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Shifts outside [0, width) give 0, or the sign to the right (as onnx's reference)."""
    a, b = np.broadcast_arrays(*xs)
    width = a.dtype.itemsize * 8
    out = (b < 0) | (b >= width)
    safe = np.where(out, 0, b).astype(a.dtype)
    if node.attrs["direction"] == "RIGHT":
        return [np.where(out, np.where(a < 0, -1, 0), np.right_shift(a, safe)).astype(a.dtype)]
    unsigned = np.dtype(f"u{a.dtype.itemsize}")
    shifted = np.left_shift(a.view(unsigned), safe.astype(unsigned)).view(a.dtype)
    return [np.where(out, 0, shifted).astype(a.dtype)]


op("BitShift", _infer_bitwise, _bit_shift, _numel_flops)


def _infer_bitcast(node: Node) -> list[TensorType]:
    t, to = node.inputs[0].type, node.attrs["to"]
    if np.dtype(DTYPES[t.dtype]).itemsize != np.dtype(DTYPES[to]).itemsize:
        raise fail(node, f"cannot reinterpret {t.dtype} as {to}: their bit widths differ")
    return [TensorType(to, t.shape)]


op("BitCast", _infer_bitcast, lambda n, xs: [xs[0].view(DTYPES[n.attrs["to"]])], _numel_flops)

ELEMENTWISE = (set(UNARY) | set(BINARY) | set(COMPARE) | set(LOGIC) | {"Not", "Where"} | set(BITWISE)
               | {"BitwiseNot", "BitShift", "BitCast"})
