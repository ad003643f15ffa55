"""Elementwise IR ops (numpy broadcasting) as StableHLO."""
from __future__ import annotations

import math
from typing import Callable

from ...ir.graph import Node, TensorType
from .emitter import Emitter, Ref

Lowering = Callable[[Emitter, Node, list], list[Ref]]

UNARY = {"Tanh": "tanh", "Sigmoid": "logistic", "Sqrt": "sqrt", "Exp": "exponential", "Log": "log",
         "Neg": "negate", "Abs": "abs", "Sin": "sine", "Cos": "cosine", "Floor": "floor", "Ceil": "ceil",
         "Round": "round_nearest_even"}
BINARY = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "divide", "And": "and", "Or": "or",
          "Xor": "xor", "BitwiseAnd": "and", "BitwiseOr": "or", "BitwiseXor": "xor"}
COMPARE = {"Equal": "EQ", "Less": "LT", "Greater": "GT", "LessOrEqual": "LE", "GreaterOrEqual": "GE"}


def _unary(name: str) -> Lowering:
    return lambda em, node, xs: [em.op(name, [xs[0]], xs[0].type)]


def _binary(name: str) -> Lowering:
    return lambda em, node, xs: [em.binary(name, xs[0], xs[1])]


def _compare(direction: str) -> Lowering:
    def lower(em: Emitter, node: Node, xs: list) -> list[Ref]:
        shape = node.outputs[0].type.shape
        return [em.compare(em.broadcast(xs[0], shape), em.broadcast(xs[1], shape), direction)]
    return lower


def extremum(em: Emitter, name: str, a: Ref, b: Ref) -> Ref:
    """maximum or minimum, NaN when either operand is NaN as ONNX and onnxruntime have it (XLA:CPU's
    own maximum drops a NaN)."""
    r = em.binary(name, a, b)
    if r.type.dtype != "f32":
        return r
    a, b = em.broadcast(a, r.type.shape), em.broadcast(b, r.type.shape)
    r = em.op("select", [em.compare(b, b, "NE"), b, r], r.type)
    return em.op("select", [em.compare(a, a, "NE"), a, r], r.type)


def _extremum(name: str) -> Lowering:
    return lambda em, node, xs: [extremum(em, name, xs[0], xs[1])]


def erf(em: Emitter, x: Ref) -> Ref:
    """CHLO's erf, which XLA expands with the polynomial of its own erf."""
    return em.op("chlo.erf", [x], x.type)


def _scaled(em: Emitter, x: Ref, scale: float, shift: float) -> Ref:
    y = em.binary("multiply", x, em.full(scale, "f32", x.type.shape))
    return em.binary("add", y, em.full(shift, "f32", x.type.shape))


def _clamp01(em: Emitter, x: Ref) -> Ref:
    lo, hi = em.full(0.0, "f32", x.type.shape), em.full(1.0, "f32", x.type.shape)
    return extremum(em, "minimum", extremum(em, "maximum", x, lo), hi)


def _relu(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [extremum(em, "maximum", xs[0], em.full(0, xs[0].type.dtype, xs[0].type.shape))]


def _gelu(em: Emitter, node: Node, xs: list) -> list[Ref]:
    x = xs[0]
    if node.attr("approximate", "none") == "tanh":
        cube = em.binary("multiply", em.binary("multiply", x, x), x)
        inner = em.binary("add", x, _scaled(em, cube, 0.044715, 0.0))
        t = em.op("tanh", [_scaled(em, inner, math.sqrt(2 / math.pi), 0.0)], x.type)
    else:
        t = erf(em, _scaled(em, x, 1 / math.sqrt(2), 0.0))
    half = _scaled(em, t, 0.5, 0.5)
    return [em.binary("multiply", x, half)]


def _hard_sigmoid(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [_clamp01(em, _scaled(em, xs[0], node.attr("alpha", 0.2), node.attr("beta", 0.5)))]


def _hard_swish(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [em.binary("multiply", xs[0], _clamp01(em, _scaled(em, xs[0], 1 / 6, 0.5)))]


def _pow(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [em.binary("power", xs[0], em.convert(xs[1], xs[0].type.dtype))]


def _atan(em: Emitter, node: Node, xs: list) -> list[Ref]:
    """Cephes atanf as the CPU lowering has it (compiler/backend/llvm/mathfn.py): XLA:CPU's
    atan2 gave wrong values on vectors of more than a few elements."""
    x = xs[0]
    k = lambda v: em.full(v, "f32", x.type.shape)  # noqa: E731
    pick = lambda c, a, b: em.op("select", [c, a, b], x.type)  # noqa: E731
    ax = em.op("abs", [x], x.type)
    big, mid = em.compare(ax, k(2.414213562373095), "GT"), em.compare(ax, k(0.4142135623730950), "GT")
    reduced = em.binary("divide", em.binary("subtract", ax, k(1.0)), em.binary("add", ax, k(1.0)))
    t = pick(big, em.binary("divide", k(-1.0), ax), pick(mid, reduced, ax))
    z = em.binary("multiply", t, t)
    p = k(8.05374449538e-2)
    for c in (-1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1):
        p = em.binary("add", em.binary("multiply", p, z), k(c))
    r = em.binary("add", em.binary("multiply", em.binary("multiply", p, z), t), t)
    r = em.binary("add", pick(big, k(math.pi / 2), pick(mid, k(math.pi / 4), k(0.0))), r)
    return [pick(em.compare(x, k(0.0), "LT"), em.op("negate", [r], x.type), r)]


def _bit_shift(em: Emitter, node: Node, xs: list) -> list[Ref]:
    """XLA's shifts already give 0, or the sign to the right, for amounts outside [0, width)."""
    right = "shift_right_logical" if xs[0].type.dtype == "u8" else "shift_right_arithmetic"
    name = right if node.attrs["direction"] == "RIGHT" else "shift_left"
    return [em.binary(name, xs[0], xs[1])]


def _bitcast(em: Emitter, node: Node, xs: list) -> list[Ref]:
    to = node.attrs["to"]
    return [xs[0] if xs[0].type.dtype == to else em.op("bitcast_convert", [xs[0]], TensorType(to, xs[0].type.shape))]


def _where(em: Emitter, node: Node, xs: list) -> list[Ref]:
    shape = node.outputs[0].type.shape
    c, a, b = (em.broadcast(x, shape) for x in xs)
    return [em.op("select", [c, a, b], a.type)]


LOWERINGS: dict[str, Lowering] = {
    **{op: _unary(name) for op, name in UNARY.items()},
    **{op: _binary(name) for op, name in BINARY.items()},
    **{op: _compare(direction) for op, direction in COMPARE.items()},
    "Not": _unary("not"), "BitwiseNot": _unary("not"),
    "Max": _extremum("maximum"), "Min": _extremum("minimum"),
    "Relu": _relu, "Erf": lambda em, node, xs: [erf(em, xs[0])], "Gelu": _gelu,
    "HardSigmoid": _hard_sigmoid, "HardSwish": _hard_swish, "Pow": _pow, "Where": _where, "Atan": _atan, "BitShift": _bit_shift,
    "Identity": lambda em, node, xs: [xs[0]],
    "Cast": lambda em, node, xs: [em.convert(xs[0], node.attrs["to"])],
    "BitCast": _bitcast,
}
