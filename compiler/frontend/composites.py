"""ONNX ops kiln builds from the IR ops it has, at import, so each lands on every backend at once.

Each rewrite keeps ONNX's NaN and infinity behaviour: Max/Min propagate NaN, and the forms avoid
inf - inf (Elu takes exp of min(x, 0); Softplus is max(x, 0) + log(1 + exp(-|x|)))."""
from __future__ import annotations

from typing import Callable

import numpy as np

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
}
