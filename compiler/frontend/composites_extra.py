"""Hardmax, LpPool and Col2Im built at import from IR ops every backend has (as composites.py does)."""
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


def _col2im(b: _Build, ins: list, attrs: dict) -> Value:
    """Each pixel is the sum of the columns' entries that land on it; for one block offset at most
    one column does, so: pad every offset's row of columns with a zero, Gather each pixel's column
    (or the zero) per offset at build-time indices, and sum over the offsets."""
    image, block = (_const_shape(b, v, what) for v, what in zip(ins[1:], ("image_shape", "block_shape")))
    index, columns = col2im_index(image, block, attrs)
    x = b("Reshape", ins[0], Value(f"{b.out}.s1", const=np.array([0, -1, len(index), columns], np.int64)))
    x = b("Pad", x, Value(f"{b.out}.p", const=np.array([0, 0, 0, 0, 0, 0, 0, 1], np.int64)))
    x = b("Reshape", x, Value(f"{b.out}.s2", const=np.array([0, 0, -1], np.int64)))
    taps = b("Gather", x, Value(f"{b.out}.i", const=index), axis=2)
    total = b("ReduceSum", taps, Value(f"{b.out}.a", const=np.array([2], np.int64)), keepdims=0)
    return b("Reshape", total, Value(f"{b.out}.s3", const=np.array([0, 0] + list(image), np.int64)))


def _const_shape(b: _Build, v: Value, what: str) -> tuple[int, ...]:
    if v.const is None:
        raise CompileError(f"Col2Im node {b.name}: {what} must be known at build time; {v.name} is computed")
    return tuple(int(d) for d in np.asarray(v.const).reshape(-1))


def col2im_index(image: tuple[int, ...], block: tuple[int, ...], attrs: dict) -> tuple[np.ndarray, int]:
    """[block offsets, pixels] indices into each offset's columns padded with a zero (at `columns`),
    offset-major, and the number of columns."""
    nd = len(image)
    dil = attrs.get("dilations") or (1,) * nd
    pads = attrs.get("pads") or (0,) * (2 * nd)
    strides = attrs.get("strides") or (1,) * nd
    counts = [(i + pads[d] + pads[nd + d] - dil[d] * (k - 1) - 1) // strides[d] + 1
              for d, (i, k) in enumerate(zip(image, block))]
    columns = int(np.prod(counts))
    index = np.tile((np.arange(int(np.prod(block)))[:, None] + 1) * (columns + 1) - 1, (1, int(np.prod(image))))
    for b, offset in enumerate(np.ndindex(*block)):
        for col, at in enumerate(np.ndindex(*counts)):
            pixel = [a * s - pads[d] + o * dl for d, (a, s, o, dl) in enumerate(zip(at, strides, offset, dil))]
            if all(0 <= p < i for p, i in zip(pixel, image)):
                index[b, np.ravel_multi_index(pixel, image)] = b * (columns + 1) + col
    return index.astype(np.int64), columns


COMPOSITES_EXTRA: dict[str, Callable] = {
    "Hardmax": _composite(_hardmax),
    "LpPool": _composite(_lp_pool),
    "Col2Im": _composite(_col2im),
}
