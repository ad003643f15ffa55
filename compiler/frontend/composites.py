"""ONNX ops kiln builds from the IR ops it has, at import, so each lands on every backend at once.

Each rewrite keeps ONNX's NaN and infinity behaviour: Max/Min propagate NaN, and the forms avoid
inf - inf (Elu takes exp of min(x, 0); Softplus is max(x, 0) + log(1 + exp(-|x|)))."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import CompileError
from ..ir.graph import Value


class _Build:
    """Emits one composite's nodes; intermediates are named after its output."""

    def __init__(self, im, name: str, out: str) -> None:
        self.im, self.name, self.out, self.count = im, name, out, 0

    def __call__(self, op: str, *inputs: Value, last: bool = False, **attrs) -> Value:
        self.count += 1
        target = self.out if last else f"{self.out}.{op.lower()}{self.count}"
        return self.im.emit(op, self.name, list(inputs), [target], attrs)[0]

    def const(self, value: float) -> Value:
        self.count += 1
        return Value(f"{self.out}.c{self.count}", const=np.float32(value))

    def elu_tail(self, x: Value, scale: float = 1.0) -> Value:
        """exp(min(x, 0) / scale) - 1: the negative branch of Elu/Selu/Celu, never inf - inf."""
        low = self("Min", x, self.const(0))
        if scale != 1.0:
            low = self("Div", low, self.const(scale))
        return self("Sub", self("Exp", low), self.const(1))


def _composite(build: Callable[[_Build, list, dict], Value]) -> Callable:
    def mapper(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
        b = _Build(im, name, outs[0])
        result = build(b, ins, attrs)
        im.emit("Identity", name, [result], outs[:1])
    return mapper


def _leaky(b: _Build, x: Value, slope: Value) -> Value:
    """max(x, 0) + slope * min(x, 0): LeakyRelu and PRelu for any slope."""
    return b("Add", b("Max", x, b.const(0)), b("Mul", b("Min", x, b.const(0)), slope))


def _elu(b: _Build, x: Value, alpha: float, scale: float = 1.0) -> Value:
    """max(x, 0) + alpha * (exp(min(x, 0) / scale) - 1)."""
    return b("Add", b("Max", x, b.const(0)), b("Mul", b.elu_tail(x, scale), b.const(alpha)))


def _softplus(b: _Build, x: Value) -> Value:
    return b("Add", b("Max", x, b.const(0)), b("Log", b("Add", b.const(1), b("Exp", b("Neg", b("Abs", x))))))


def _where_zero(b: _Build, keep: Value, x: Value) -> Value:
    return b("Where", keep, x, b.const(0))


def _shrink(b: _Build, ins: list, attrs: dict) -> Value:
    x, bias, lambd = ins[0], attrs.get("bias", 0.0), attrs.get("lambd", 0.5)
    above = b("Where", b("Greater", x, b.const(lambd)), b("Sub", x, b.const(bias)), b.const(0))
    return b("Where", b("Less", x, b.const(-lambd)), b("Add", x, b.const(bias)), above)


def _is_inf(b: _Build, ins: list, attrs: dict) -> Value:
    x = ins[0]
    checks = [b("Equal", x, b.const(sign * np.inf))
              for sign, key in ((1, "detect_positive"), (-1, "detect_negative")) if attrs.get(key, 1)]
    if not checks:
        return b("Less", x, x)  # detecting neither sign: all false
    return checks[0] if len(checks) == 1 else b("Or", *checks)


def _sign(b: _Build, ins: list, attrs: dict) -> Value:
    """1, -1, or x itself (0 and NaN stay), in x's own dtype."""
    x = ins[0]
    one, zero = b("CastLike", b.const(1), x), b("CastLike", b.const(0), x)
    return b("Where", b("Greater", x, zero), one, b("Where", b("Less", x, zero), b("Neg", one), x))


def _mean_variance_norm(b: _Build, ins: list, attrs: dict) -> Value:
    """ONNX's function: (x - mean) / (sqrt(mean(x^2) - mean^2) + 1e-9) over `axes`."""
    x, axes = ins[0], tuple(attrs.get("axes", (0, 2, 3)))
    mean = b("ReduceMean", x, axes=axes, keepdims=1)
    variance = b("Sub", b("ReduceMean", b("Mul", x, x), axes=axes, keepdims=1), b("Mul", mean, mean))
    return b("Div", b("Sub", x, mean), b("Add", b("Sqrt", variance), b.const(1e-9)))


def _lp_norm(b: _Build, ins: list, attrs: dict) -> Value:
    op = {1: "ReduceL1", 2: "ReduceL2"}.get(attrs.get("p", 2))
    if op is None:
        raise CompileError(f"LpNormalization node {b.name}: p must be 1 or 2, got {attrs['p']}")
    norm = b(op, ins[0], axes=(attrs.get("axis", -1),), keepdims=1)
    return b("Div", ins[0], b("Where", b("Equal", norm, b.const(0)), b.const(1), norm))  # a zero vector stays 0


def _rms_norm(b: _Build, ins: list, attrs: dict) -> Value:
    """x / sqrt(mean(x^2 over the dims from `axis` on) + epsilon) * scale."""
    x, scale = ins[0], ins[1]
    flat = b("Flatten", x, axis=attrs.get("axis", -1))
    mean = b("ReduceMean", b("Mul", flat, flat), axes=(1,), keepdims=1)
    rms = b("Sqrt", b("Add", mean, b.const(attrs.get("epsilon", 1e-5))))
    normed = b("Reshape", b("Div", flat, rms), b("Shape", x))
    return b("Mul", normed, scale)


COMPOSITES: dict[str, Callable] = {
    "Reciprocal": _composite(lambda b, ins, a: b("Div", b.const(1), ins[0])),
    "LeakyRelu": _composite(lambda b, ins, a: _leaky(b, ins[0], b.const(a.get("alpha", 0.01)))),
    "PRelu": _composite(lambda b, ins, a: _leaky(b, ins[0], ins[1])),
    "Elu": _composite(lambda b, ins, a: _elu(b, ins[0], a.get("alpha", 1.0))),
    "Celu": _composite(lambda b, ins, a: _elu(b, ins[0], a.get("alpha", 1.0), scale=a.get("alpha", 1.0))),
    "Selu": _composite(lambda b, ins, a: b("Mul", b.const(a.get("gamma", 1.0507009873554805)),
                                           _elu(b, ins[0], a.get("alpha", 1.6732632423543772)))),
    "Softplus": _composite(lambda b, ins, a: _softplus(b, ins[0])),
    "Softsign": _composite(lambda b, ins, a: b("Div", ins[0], b("Add", b.const(1), b("Abs", ins[0])))),
    "Mish": _composite(lambda b, ins, a: b("Mul", ins[0], b("Tanh", _softplus(b, ins[0])))),
    "RMSNormalization": _composite(_rms_norm),
    "ThresholdedRelu": _composite(lambda b, ins, a: _where_zero(b, b("Greater", ins[0], b.const(a.get("alpha", 1.0))),
                                                                ins[0])),
    "Shrink": _composite(_shrink),
    "IsNaN": _composite(lambda b, ins, a: b("Not", b("Equal", ins[0], ins[0]))),
    "IsInf": _composite(_is_inf),
    "Sign": _composite(_sign),
    "GlobalMaxPool": _composite(lambda b, ins, a: b("ReduceMax", ins[0], global_pool=True, keepdims=1)),
    "MeanVarianceNormalization": _composite(_mean_variance_norm),
    "LpNormalization": _composite(_lp_norm),
}
