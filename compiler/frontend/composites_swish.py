"""Swish (opset 24) and SwiGLU (opset 28) built at import from a Sigmoid and products, as
composites.py does, so they land on every backend at once."""
from __future__ import annotations

from typing import Callable

from ..ir.graph import Value
from .composites import _Build, _composite


def _swish(b: _Build, x: Value, alpha: float) -> Value:
    """x * sigmoid(alpha * x)."""
    return b("Mul", x, b("Sigmoid", x if alpha == 1.0 else b("Mul", x, b.const(alpha))))


COMPOSITES_SWISH: dict[str, Callable] = {
    "Swish": _composite(lambda b, ins, a: _swish(b, ins[0], a.get("alpha", 1.0))),
    "SwiGLU": _composite(lambda b, ins, a: b("Mul", _swish(b, ins[0], a.get("alpha", 1.0)), ins[1])),
}
