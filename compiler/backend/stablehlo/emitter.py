"""Writing StableHLO ops in MLIR's generic form, which reads the same to every StableHLO version
the plugins parse: `%v3 = "stablehlo.add"(%v1, %v2) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import CompileError
from ...ir.graph import TensorType, Value

ELEMENT_TYPES = {"f32": "f32", "i64": "i64", "i32": "i32", "i8": "i8", "u8": "ui8", "bool": "i1"}
NUMPY = {"f32": np.float32, "i64": np.int64, "i32": np.int32, "i8": np.int8, "u8": np.uint8, "bool": np.bool_}


@dataclass(frozen=True)
class Ref:
    """An SSA value of the function being written."""

    name: str
    type: TensorType


def tensor_type(t: TensorType) -> str:
    dims = "".join(f"{d}x" for d in t.shape)
    return f"tensor<{dims}{ELEMENT_TYPES[t.dtype]}>"


def i64_array(values) -> str:
    return "array<i64" + (": " + ", ".join(str(int(v)) for v in values) if len(values) else "") + ">"


def _bool_items(data: np.ndarray) -> str:
    if data.ndim == 0:
        return "true" if data else "false"
    return "[" + ", ".join(_bool_items(d) for d in data) + "]"


def dense_literal(data: np.ndarray, dtype: str) -> str:
    """`dense<...> : tensor<...>`: numbers as raw little-endian bytes in hex (exact for every
    value), booleans as a splat or nested list."""
    data = np.asarray(data, NUMPY[dtype], order="C")  # keeps 0-d arrays 0-d
    t = tensor_type(TensorType(dtype, tuple(data.shape)))
    if dtype == "bool":
        items = _bool_items(data.ravel()[0]) if data.size and data.min() == data.max() else _bool_items(data)
        return f"dense<{items}> : {t}"
    return f'dense<"0x{data.astype(data.dtype.newbyteorder("<")).tobytes().hex().upper()}"> : {t}'


class Emitter:
    """Accumulates the body of one function; constants that are weights become its arguments."""

    def __init__(self, is_weight, precision: str = "highest") -> None:
        self.lines: list[str] = []
        self.precision = precision.upper()
        self.count = 0
        self.env: dict[Value, Ref] = {}
        self.weights: list[tuple[Value, Ref]] = []
        self.is_weight = is_weight

    def fresh(self, prefix: str = "v") -> str:
        self.count += 1
        return f"%{prefix}{self.count}"

    def precision_config(self) -> str:
        """For dot_general and convolution: without it XLA:TPU multiplies f32 in bf16 passes
        (errors ~1e-2); HIGHEST keeps f32."""
        operand = f"#stablehlo<precision {self.precision}>"
        return f"precision_config = [{operand}, {operand}]"

    def op(self, name: str, args: list[Ref], out: TensorType, attrs: str = "", region: str = "") -> Ref:
        """One op; `name` is a StableHLO op ("add") or a qualified one ("chlo.erf")."""
        name = name if "." in name else f"stablehlo.{name}"
        ref = Ref(self.fresh(), out)
        operands = ", ".join(a.name for a in args)
        types = ", ".join(tensor_type(a.type) for a in args)
        attr_text = f" {{{attrs}}}" if attrs else ""
        region_text = f" ({region})" if region else ""
        self.lines.append(f'{ref.name} = "{name}"({operands}){region_text}{attr_text} : '
                          f"({types}) -> {tensor_type(out)}")
        return ref

    def value(self, v: Value) -> Ref:
        """The SSA value of a graph value: computed, a weight argument, or an inline constant."""
        if v in self.env:
            return self.env[v]
        if v.const is None:
            raise CompileError(f"value {v.name} is used before it is computed")
        if self.is_weight(v):
            ref = Ref(self.fresh("w"), v.type)
            self.weights.append((v, ref))
        else:
            ref = self.constant(v.const, v.type.dtype)
        self.env[v] = ref
        return ref

    def constant(self, data, dtype: str) -> Ref:
        data = np.asarray(data, NUMPY[dtype])
        ref = Ref(self.fresh(), TensorType(dtype, tuple(data.shape)))
        literal = dense_literal(data, dtype)
        self.lines.append(f'{ref.name} = "stablehlo.constant"() {{value = {literal}}} : () -> '
                          f"{tensor_type(ref.type)}")
        return ref

    def full(self, value, dtype: str, shape: tuple[int, ...]) -> Ref:
        """A tensor of one value, as a scalar constant broadcast to `shape`."""
        return self.broadcast(self.constant(value, dtype), shape)

    def broadcast(self, x: Ref, shape: tuple[int, ...]) -> Ref:
        """numpy broadcasting of `x` to `shape` (dimensions aligned on the right)."""
        if x.type.shape == tuple(shape):
            return x
        offset = len(shape) - x.type.rank
        return self.op("broadcast_in_dim", [x], TensorType(x.type.dtype, tuple(shape)),
                       f"broadcast_dimensions = {i64_array(range(offset, len(shape)))}")

    def broadcast_dims(self, x: Ref, shape: tuple[int, ...], dims: list[int]) -> Ref:
        return self.op("broadcast_in_dim", [x], TensorType(x.type.dtype, tuple(shape)),
                       f"broadcast_dimensions = {i64_array(dims)}")

    def reshape(self, x: Ref, shape: tuple[int, ...]) -> Ref:
        if x.type.shape == tuple(shape):
            return x
        return self.op("reshape", [x], TensorType(x.type.dtype, tuple(shape)))

    def convert(self, x: Ref, dtype: str) -> Ref:
        if x.type.dtype == dtype:
            return x
        if dtype == "bool":
            zero = self.full(0, x.type.dtype, x.type.shape)
            return self.compare(x, zero, "NE")
        return self.op("convert", [x], TensorType(dtype, x.type.shape))

    def binary(self, name: str, a: Ref, b: Ref) -> Ref:
        shape = tuple(np.broadcast_shapes(a.type.shape, b.type.shape))
        a, b = self.broadcast(a, shape), self.broadcast(b, shape)
        return self.op(name, [a, b], TensorType(a.type.dtype, shape))

    def compare(self, a: Ref, b: Ref, direction: str) -> Ref:
        return self.op("compare", [a, b], TensorType("bool", a.type.shape),
                       f"comparison_direction = #stablehlo<comparison_direction {direction}>")

    def scalar_region(self, op: str, dtype: str) -> str:
        """The body of a reduce: two scalars combined by `op`."""
        t = tensor_type(TensorType(dtype, ()))
        a, b, r = self.fresh("a"), self.fresh("b"), self.fresh("r")
        return (f"{{\n  ^bb0({a}: {t}, {b}: {t}):\n    {r} = \"stablehlo.{op}\"({a}, {b}) : ({t}, {t}) -> {t}\n"
                f"    \"stablehlo.return\"({r}) : ({t}) -> ()\n  }}")

    def nan_extremum_region(self, op: str = "maximum") -> str:
        """The body of a max (or min) reduction that gives NaN when either scalar is NaN (XLA:CPU's
        maximum alone drops it)."""
        t, b = tensor_type(TensorType("f32", ())), tensor_type(TensorType("bool", ()))
        a, c, m, na, r1, nc, r = (self.fresh(p) for p in ("a", "b", "m", "na", "r", "nb", "r"))
        ne = "{comparison_direction = #stablehlo<comparison_direction NE>}"
        return (f"{{\n  ^bb0({a}: {t}, {c}: {t}):\n"
                f"    {m} = \"stablehlo.{op}\"({a}, {c}) : ({t}, {t}) -> {t}\n"
                f"    {na} = \"stablehlo.compare\"({a}, {a}) {ne} : ({t}, {t}) -> {b}\n"
                f"    {r1} = \"stablehlo.select\"({na}, {a}, {m}) : ({b}, {t}, {t}) -> {t}\n"
                f"    {nc} = \"stablehlo.compare\"({c}, {c}) {ne} : ({t}, {t}) -> {b}\n"
                f"    {r} = \"stablehlo.select\"({nc}, {c}, {r1}) : ({b}, {t}, {t}) -> {t}\n"
                f"    \"stablehlo.return\"({r}) : ({t}) -> ()\n  }}")

    def reduce(self, x: Ref, axes: tuple[int, ...], op: str, init, region: str | None = None) -> Ref:
        """Reduces `axes` away (no kept dimensions); `region` replaces the plain `op` body."""
        out = TensorType(x.type.dtype, tuple(d for i, d in enumerate(x.type.shape) if i not in axes))
        start = self.constant(init, x.type.dtype)
        return self.op("reduce", [x, start], out, f"dimensions = {i64_array(sorted(axes))}",
                       region or self.scalar_region(op, x.type.dtype))

    def reduce_keep(self, x: Ref, axes: tuple[int, ...], op: str, init) -> Ref:
        """Reduces `axes` to size 1 and broadcasts the result back to x's shape."""
        kept = tuple(1 if i in axes else d for i, d in enumerate(x.type.shape))
        return self.broadcast(self.reshape(self.reduce(x, axes, op, init), kept), x.type.shape)
