"""Resize: shapes are static, so every resized axis is a fixed linear map. Each output position
along it reads K input positions (1 nearest, 2 linear, 4 cubic, more with antialias) with
build-time weights, computed in float64 from onnx's reference formulas
(onnx/reference/ops/op_resize.py), axis by axis in order as the reference does."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .graph import Node, TensorType
from .registry import const_input, fail, norm_axis, op

MODES = ("nearest", "linear", "cubic")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_crop_and_resize", "tf_half_pixel_for_nn")
ASPECT_POLICIES = ("stretch", "not_larger", "not_smaller")


@dataclass(frozen=True)
class AxisMap:
    """One resized axis: output position j is sum_k x[index[j, k]] * weight[j, k] (a single tap of
    weight 1 for nearest: weight is None), or the extrapolation value where `outside[j]`."""
    axis: int
    index: np.ndarray
    weight: np.ndarray | None
    outside: np.ndarray | None


def _attr_choice(node: Node, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = node.attr(key, default)
    if value not in choices:
        raise fail(node, f"unsupported {key} {value!r} (supported: {', '.join(choices)})")
    return value


def _axes(node: Node, rank: int) -> list[int]:
    axes = node.attr("axes", None)
    if axes is None:
        return list(range(rank))
    axes = [norm_axis(node, int(a), rank) for a in axes]
    if len(set(axes)) != len(axes):
        raise fail(node, f"axes {list(node.attr('axes'))} repeat an axis")
    return axes


def _given(node: Node, i: int, what: str) -> np.ndarray | None:
    """Input i at build time; absent or empty (as exporters write an unused scales) is None."""
    value = const_input(node, i, what)
    return None if value is None or value.size == 0 else np.ravel(value)


def _scales_and_sizes(node: Node) -> tuple[list[float], list[int]]:
    """Per-dimension scale factors and output sizes, as the reference derives them from the
    scales or sizes input (over `axes`) and keep_aspect_ratio_policy."""
    shape = node.inputs[0].type.shape
    rank, axes = len(shape), _axes(node, len(shape))
    scales, sizes = _given(node, 2, "scales"), _given(node, 3, "sizes")
    if (scales is None) == (sizes is None):
        raise fail(node, "exactly one of scales and sizes must be given")
    given = scales if sizes is None else sizes
    if len(given) != len(axes):
        raise fail(node, f"{len(given)} {'scales' if sizes is None else 'sizes'} for {len(axes)} axes")
    if sizes is None:
        factors = [1.0] * rank
        for a, s in zip(axes, scales):
            factors[a] = float(s)
        out = (np.array(factors) * np.array(shape, np.float64)).astype(np.int64)
        return factors, [int(d) for d in out]
    out = list(shape)
    for a, s in zip(axes, sizes):
        out[a] = int(s)
    return _keep_aspect_ratio(node, shape, out, axes)


def _keep_aspect_ratio(node: Node, shape: tuple[int, ...], out: list[int], axes: list[int]
                       ) -> tuple[list[float], list[int]]:
    factors = [o / i for o, i in zip(out, shape)]
    policy = _attr_choice(node, "keep_aspect_ratio_policy", "stretch", ASPECT_POLICIES)
    if policy == "stretch":
        return factors, out
    scale = (min if policy == "not_larger" else max)(factors[a] for a in axes)
    factors = [scale if i in axes else 1.0 for i in range(len(shape))]
    return factors, [int(scale * d + 0.5) if i in axes else d for i, d in enumerate(shape)]


def _roi(node: Node, rank: int) -> list[float] | None:
    """Per-dimension [starts..., ends...] (over `axes` in the input), for tf_crop_and_resize only."""
    if node.attr("coordinate_transformation_mode", "half_pixel") != "tf_crop_and_resize":
        return None
    roi = _given(node, 1, "roi")
    axes = _axes(node, rank)
    if roi is None or len(roi) != 2 * len(axes):
        raise fail(node, f"tf_crop_and_resize needs an roi of {2 * len(axes)} values (starts, ends)")
    full = [0.0] * rank + [1.0] * rank
    for i, a in enumerate(axes):
        full[a], full[rank + a] = float(roi[i]), float(roi[len(axes) + i])
    return full


def _source_coordinates(mode: str, y: np.ndarray, scale: float, n_in: int, n_out: int,
                        roi: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The input coordinate each output position maps to and, for tf_crop_and_resize, whether it
    falls outside the input."""
    width = scale * n_in
    if mode == "align_corners":
        return (np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)), None
    if mode == "asymmetric":
        return y / scale, None
    if mode == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale, None
    if mode == "tf_crop_and_resize":
        start, end = roi
        span = (end - start) * (n_in - 1)
        x = (np.full(n_out, span / 2) if width == 1 else y * span / (width - 1)) + start * (n_in - 1)
        return x, (x < 0) | (x > n_in - 1)
    if mode == "pytorch_half_pixel":
        return (np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5), None
    offset = n_in / 2 * (1 - n_out / width) if mode == "half_pixel_symmetric" else 0.0
    return offset + (y + 0.5) / scale - 0.5, None


def _cubic(ratio: np.ndarray, a: float) -> np.ndarray:
    r, s = ratio, 1 - ratio
    return np.stack([((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                     ((a + 2) * r - (a + 3)) * r * r + 1,
                     ((a + 2) * s - (a + 3)) * s * s + 1,
                     ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a], axis=1)


def _cubic_kernel(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    far = a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _antialiased(ratio: np.ndarray, scale: float, mode: str, a: float) -> np.ndarray:
    """Downsampling widens the kernel by 1/scale (normalised to sum 1), as the reference does."""
    scale = min(scale, 1.0)
    if mode == "linear":
        start = int(np.floor(-1 / scale) + 1)
        taps = np.arange(start, 2 - start)
        coeffs = np.clip(1 - np.abs((taps[None, :] - ratio[:, None]) * scale), 0, 1)
    else:
        start = int(np.floor(-2 / scale) + 1)
        taps = np.arange(start, 2 - start)
        coeffs = _cubic_kernel(scale * (taps[None, :] - ratio[:, None]), a)
    return coeffs / coeffs.sum(axis=1, keepdims=True)


def _coefficients(node: Node, ratio: np.ndarray, scale: float) -> np.ndarray:
    """[n_out, K] weights for the K taps around each source coordinate (ratio in (0, 1])."""
    mode = node.attr("mode", "nearest")
    a = float(node.attr("cubic_coeff_a", -0.75))
    if node.attr("antialias", 0) and mode != "nearest":
        return _antialiased(ratio, scale, mode, a)
    if mode == "linear":
        return np.stack([1 - ratio, ratio], axis=1)
    if mode == "cubic":
        return _cubic(ratio, a)
    nearest = node.attr("nearest_mode", "round_prefer_floor")
    upper = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5,
             "floor": np.zeros(ratio.shape, bool), "ceil": np.ones(ratio.shape, bool)}[nearest]
    upper = upper | (ratio == 1)
    return np.stack([~upper, upper], axis=1).astype(np.float64)


def _taps(x: np.ndarray, n: int) -> np.ndarray:
    """The n input positions nearest x (ties to the smaller), unclamped, as the reference picks
    them in its edge-padded input."""
    pad = int(np.ceil(n / 2))
    padded = x + pad
    p = np.floor(padded).astype(np.int64)
    frac = padded - p
    if n % 2 == 0:
        offset = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        offset = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    return (p + offset)[:, None] + np.arange(n)[None, :] - pad


def _axis_map(node: Node, axis: int, scale: float, n_out: int, roi: list[float] | None) -> AxisMap:
    n_in, rank = node.inputs[0].type.shape[axis], node.inputs[0].type.rank
    mode = node.attr("coordinate_transformation_mode", "half_pixel")
    x, outside = _source_coordinates(mode, np.arange(n_out, dtype=np.float64), scale, n_in, n_out,
                                     None if roi is None else (roi[axis], roi[axis + rank]))
    ratio = np.where(x == np.floor(x), 1.0, x - np.floor(x))
    coeffs = _coefficients(node, ratio, scale)
    index = _taps(x, coeffs.shape[1])
    if node.attr("exclude_outside", 0):
        coeffs = np.where((index < 0) | (index >= n_in), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    index = np.clip(index, 0, n_in - 1)
    outside = outside if outside is not None and outside.any() else None
    if node.attr("mode", "nearest") == "nearest":
        return AxisMap(axis, index[np.arange(n_out), coeffs.argmax(axis=1)][:, None], None, outside)
    return AxisMap(axis, index, coeffs, outside)


def resize_plan(node: Node) -> tuple[tuple[int, ...], list[AxisMap]]:
    """The output shape and the maps of the axes that change (identity axes are skipped)."""
    _check_attrs(node)
    shape = node.inputs[0].type.shape
    factors, sizes = _scales_and_sizes(node)
    if min(sizes, default=1) < 1:
        raise fail(node, f"output shape {sizes} has an empty dimension; kiln does not support empty tensors")
    roi = _roi(node, len(shape))
    maps = []
    for axis in _axes(node, len(shape)):
        trivial_roi = roi is None or (math.isclose(roi[axis], 0.0) and math.isclose(roi[axis + len(shape)], 1.0))
        if math.isclose(factors[axis], 1.0) and sizes[axis] == shape[axis] and trivial_roi:
            continue
        maps.append(_axis_map(node, axis, factors[axis], sizes[axis], roi))
    return tuple(sizes), maps


def _check_attrs(node: Node) -> None:
    mode = _attr_choice(node, "mode", "nearest", MODES)
    _attr_choice(node, "nearest_mode", "round_prefer_floor", NEAREST_MODES)
    _attr_choice(node, "coordinate_transformation_mode", "half_pixel", COORDINATE_MODES)
    if mode == "nearest" and node.attr("antialias", 0):
        raise fail(node, "antialias applies to linear and cubic modes only, not nearest")
    if mode != "nearest" and node.inputs[0].type.dtype != "f32":
        raise fail(node, f"{mode} mode needs float input, got {node.inputs[0].type.dtype}")


def _infer(node: Node) -> list[TensorType]:
    shape, _ = resize_plan(node)
    return [TensorType(node.inputs[0].type.dtype, shape)]


def _evaluate(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    x = xs[0]
    _, maps = resize_plan(node)
    for m in maps:
        x = _apply_axis_map(node, x, m)
    return [x]


def _apply_axis_map(node: Node, x: np.ndarray, m: AxisMap) -> np.ndarray:
    """One axis map in numpy (float64 sums, as the reference)."""
    gathered = np.take(x, m.index, axis=m.axis)
    if m.weight is None:
        y = gathered[(slice(None),) * (m.axis + 1) + (0,)]
    else:
        w = m.weight.reshape(m.weight.shape + (1,) * (x.ndim - m.axis - 1))
        y = (gathered.astype(np.float64) * w).sum(axis=m.axis + 1).astype(x.dtype)
    if m.outside is not None:
        mask = m.outside.reshape(m.outside.shape + (1,) * (x.ndim - m.axis - 1))
        y = np.where(mask, np.asarray(node.attr("extrapolation_value", 0.0), x.dtype), y)
    return y


def _flops(node: Node) -> int:
    _, maps = resize_plan(node)
    taps = max((m.index.shape[1] for m in maps), default=0)
    return 2 * taps * len(maps) * node.outputs[0].type.numel


op("Resize", _infer, _evaluate, _flops)
