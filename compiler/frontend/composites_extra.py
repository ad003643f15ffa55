"""Hardmax and LpPool built at import from IR ops every backend has (as composites.py does)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import CompileError
from ..ir.graph import Value
from .composites import _Build, _composite


def _hardmax(b: _Build, ins: list, attrs: dict) -> Value:
    """OneHot of the ArgMax along `axis` (the first maximum; NaN as ArgMax ranks it), in x's dtype."""
    x, axis = ins[0], attrs.get("axis", -1)
    first = b("ArgMax", x, axis=axis, keepdims=0)
    depth = b("Shape", x, start=axis, **({"end": axis + 1} if axis != -1 else {}))
    values = b("CastLike", Value(f"{b.out}.offon", const=np.array([0, 1], np.float32)), x)
    return b("OneHot", first, depth, values, axis=axis)


def _lp_pool(b: _Build, ins: list, attrs: dict) -> Value:
    """(sum of |x|^p over each window)^(1/p): the sum an AveragePool that counts padding (zeros)
    times the window size."""
    p = attrs.get("p", 2)
    if p < 1:
        raise CompileError(f"LpPool node {b.name}: p must be 1 or more, got {p}")
    x = ins[0]
    powered = b("Mul", x, x) if p == 2 else b("Abs", x) if p == 1 else b("Pow", b("Abs", x), b.const(p))
    pool = {k: v for k, v in attrs.items() if k != "p"}
    mean = b("AveragePool", powered, count_include_pad=1, **pool)
    total = b("Mul", mean, b.const(float(np.prod(attrs["kernel_shape"]))))
    return b("Sqrt", total) if p == 2 else total if p == 1 else b("Pow", total, b.const(1.0 / p))


COMPOSITES_EXTRA: dict[str, Callable] = {
    "Hardmax": _composite(_hardmax),
    "LpPool": _composite(_lp_pool),
}
