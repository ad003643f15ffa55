"""Data-movement and shape ops. Shape-carrying inputs must be build-time constants."""
from __future__ import annotations

import numpy as np

from .graph import DTYPES, NP_TO_DTYPE, Node, TensorType
from .registry import broadcast_shapes, const_input, fail, norm_axis, op


def _t(node: Node, i: int = 0) -> TensorType:
    return node.inputs[i].type


def reshape_target(node: Node) -> tuple[int, ...]:
    shape = [int(d) for d in const_input(node, 1, "the target shape")]
    src = _t(node).shape
    if not node.attr("allowzero", 0):
        shape = [src[i] if d == 0 else d for i, d in enumerate(shape)]
    if shape.count(-1) > 1:
        raise fail(node, "more than one -1 in the target shape")
    known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
    total = _t(node).numel
    if -1 in shape:
        if known == 0 or total % known:
            raise fail(node, f"cannot reshape {list(src)} to {shape}")
        shape[shape.index(-1)] = total // known
    if int(np.prod(shape, dtype=np.int64)) != total:
        raise fail(node, f"cannot reshape {list(src)} to {shape}")
    return tuple(shape)


def _reshape(node: Node) -> list[TensorType]:
    if "shape" in node.attrs:
        shape = tuple(node.attrs["shape"])
        if int(np.prod(shape, dtype=np.int64)) != _t(node).numel:
            raise fail(node, f"cannot reshape {list(_t(node).shape)} to {list(shape)}")
        return [TensorType(_t(node).dtype, shape)]
    return [TensorType(_t(node).dtype, reshape_target(node))]


def _flatten(node: Node) -> list[TensorType]:
    s = _t(node).shape
    axis = node.attr("axis", 1)
    if not -len(s) <= axis <= len(s):
        raise fail(node, f"axis {axis} out of range for rank {len(s)}")
    axis = axis + len(s) if axis < 0 else axis
    outer = int(np.prod(s[:axis], dtype=np.int64))
    return [TensorType(_t(node).dtype, (outer, int(np.prod(s[axis:], dtype=np.int64))))]


def squeeze_axes(node: Node) -> list[int]:
    s = _t(node).shape
    axes = const_input(node, 1, "axes")
    if axes is None:
        axes = node.attr("axes")
    if axes is None:
        return [i for i, d in enumerate(s) if d == 1]
    axes = sorted(norm_axis(node, int(a), len(s)) for a in np.ravel(axes))
    if any(s[a] != 1 for a in axes):
        raise fail(node, f"cannot squeeze axes {axes} of shape {list(s)}")
    return axes


def _squeeze(node: Node) -> list[TensorType]:
    drop = squeeze_axes(node)
    shape = tuple(d for i, d in enumerate(_t(node).shape) if i not in drop)
    return [TensorType(_t(node).dtype, shape)]


def _unsqueeze(node: Node) -> list[TensorType]:
    axes = const_input(node, 1, "axes")
    axes = node.attr("axes") if axes is None else axes
    s = list(_t(node).shape)
    rank = len(s) + len(np.ravel(axes))
    for a in sorted(norm_axis(node, int(a), rank) for a in np.ravel(axes)):
        s.insert(a, 1)
    return [TensorType(_t(node).dtype, tuple(s))]


def perm_of(node: Node) -> tuple[int, ...]:
    perm = node.attr("perm")
    if perm and _t(node) is None:  # a rewrite's new node, typed by the next inference
        return tuple(int(p) for p in perm)
    rank = _t(node).rank
    perm = perm or list(range(rank))[::-1]
    if sorted(perm) != list(range(rank)):
        raise fail(node, f"perm {list(perm)} is not a permutation of {rank} axes")
    return tuple(int(p) for p in perm)


def _transpose(node: Node) -> list[TensorType]:
    s = _t(node).shape
    return [TensorType(_t(node).dtype, tuple(s[p] for p in perm_of(node)))]


def _concat(node: Node) -> list[TensorType]:
    ts = [v.type for v in node.inputs]
    axis = norm_axis(node, node.attrs["axis"], ts[0].rank)
    for t in ts[1:]:
        if t.rank != ts[0].rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, ts[0].shape))
                                        if i != axis):
            raise fail(node, f"cannot concatenate {', '.join(str(t) for t in ts)} on axis {axis}")
    shape = list(ts[0].shape)
    shape[axis] = sum(t.shape[axis] for t in ts)
    return [TensorType(ts[0].dtype, tuple(shape))]


def split_sizes(node: Node) -> list[int]:
    t = _t(node)
    axis = norm_axis(node, node.attr("axis", 0), t.rank)
    sizes = const_input(node, 1, "split sizes")
    sizes = node.attr("split") if sizes is None else sizes
    n = len(node.outputs)
    if sizes is None:
        chunk = -(-t.shape[axis] // n)
        sizes = [min(chunk, t.shape[axis] - i * chunk) for i in range(n)]
    sizes = [int(s) for s in np.ravel(sizes)]
    if sum(sizes) != t.shape[axis] or len(sizes) != n:
        raise fail(node, f"split sizes {sizes} do not match dimension {t.shape[axis]}")
    return sizes


def _split(node: Node) -> list[TensorType]:
    t = _t(node)
    axis = norm_axis(node, node.attr("axis", 0), t.rank)
    out = []
    for size in split_sizes(node):
        shape = list(t.shape)
        shape[axis] = size
        out.append(TensorType(t.dtype, tuple(shape)))
    return out


def slice_params(node: Node) -> tuple[list[int], list[int], list[int]]:
    """Per-dimension (start, step, length) with ONNX clamping rules applied."""
    if "first" in node.attrs:  # already normalised by the lowering pass
        return list(node.attrs["first"]), list(node.attrs["step"]), list(node.attrs["length"])
    shape = _t(node).shape
    starts, ends = const_input(node, 1, "starts"), const_input(node, 2, "ends")
    axes = const_input(node, 3, "axes")
    steps = const_input(node, 4, "steps")
    axes = range(len(starts)) if axes is None else [norm_axis(node, int(a), len(shape)) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    first, step, length = [0] * len(shape), [1] * len(shape), list(shape)
    for a, s, e, st in zip(axes, starts, ends, steps):
        d, s, e, st = shape[a], int(s), int(e), int(st)
        if st == 0:
            raise fail(node, "slice step 0")
        s, e = (s + d if s < 0 else s), (e + d if e < 0 else e)
        if st > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
            n = max(0, -(-(e - s) // st))
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
            n = max(0, -(-(s - e) // -st))
        first[a], step[a], length[a] = s, st, n
    return first, step, length


def _slice(node: Node) -> list[TensorType]:
    return [TensorType(_t(node).dtype, tuple(slice_params(node)[2]))]


def _eval_slice(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    first, step, length = slice_params(node)
    idx = tuple(slice(f, f + s * n if f + s * n >= 0 else None, s) if n else slice(0, 0)
                for f, s, n in zip(first, step, length))
    return [xs[0][idx]]


def _gather(node: Node) -> list[TensorType]:
    d, i = _t(node, 0), _t(node, 1)
    axis = norm_axis(node, node.attr("axis", 0), d.rank)
    if i.dtype not in ("i64", "i32"):
        raise fail(node, f"indices must be integers, got {i.dtype}")
    return [TensorType(d.dtype, d.shape[:axis] + i.shape + d.shape[axis + 1:])]


def _eval_gather(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    axis = node.attr("axis", 0) % xs[0].ndim
    idx = xs[1].astype(np.int64)
    return [np.take(xs[0], np.where(idx < 0, idx + xs[0].shape[axis], idx), axis=axis)]


def _expand(node: Node) -> list[TensorType]:
    shape = tuple(int(d) for d in const_input(node, 1, "the target shape"))
    return [TensorType(_t(node).dtype, broadcast_shapes(node, _t(node).shape, shape))]


def _shape_slice(node: Node) -> tuple[int, ...]:
    s = _t(node).shape
    start, end = node.attr("start", 0), node.attr("end", len(s))
    return s[slice(start, end)]


def _constant_of_shape(node: Node) -> list[TensorType]:
    shape = tuple(int(d) for d in const_input(node, 0, "the shape"))
    return [TensorType(NP_TO_DTYPE[_fill_value(node).dtype], shape)]


def _eval_constant_of_shape(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    value = _fill_value(node)
    return [np.full(tuple(int(d) for d in xs[0]), value, value.dtype)]


def _fill_value(node: Node) -> np.ndarray:
    """The fill value in its own dtype, or (like a Value's data) in f32/i64 when the IR lacks it."""
    value = np.asarray(node.attr("value", np.zeros(1, np.float32))).ravel()[0]
    if value.dtype not in NP_TO_DTYPE:
        value = value.astype(np.float32 if value.dtype.kind == "f" else np.int64)
    return value


PAD_MODES = ("constant", "reflect", "edge", "wrap")


def pad_amounts(node: Node) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-dimension (begin, end) pads, from the pads input (opset >= 11) or attribute, over the
    axes input's dimensions (opset >= 18) or all of them; negative pads crop."""
    rank = _t(node).rank
    pads = const_input(node, 1, "pads")
    pads = [int(p) for p in np.ravel(node.attr("pads", ()) if pads is None else pads)]
    axes = const_input(node, 3, "axes")
    axes = list(range(rank)) if axes is None else [norm_axis(node, int(a), rank) for a in np.ravel(axes)]
    if len(pads) != 2 * len(axes):
        raise fail(node, f"{len(pads)} pads for {len(axes)} axes")
    begin, end = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        begin[a], end[a] = pads[k], pads[k + len(axes)]
    return tuple(begin), tuple(end)


def pad_source(node: Node, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output position along `axis`: the input position it reads and whether it lies
    inside the input (else it is constant_value). Cropping comes first, then padding the rest."""
    mode = node.attr("mode", "constant")
    n = _t(node).shape[axis]
    begin, end = (p[axis] for p in pad_amounts(node))
    start, kept = max(-begin, 0), n - max(-begin, 0) - max(-end, 0)
    before, after = max(begin, 0), max(end, 0)
    if not (before or after):
        return np.arange(start, start + kept), np.ones(kept, bool)
    if n == 0 or kept <= 0 and mode != "constant":
        raise fail(node, f"cannot {mode}-pad axis {axis}: it is empty")
    if mode == "reflect" and max(before, after) >= kept:
        raise fail(node, f"reflect pads {before}, {after} of axis {axis} must be less than its size {kept}")
    i = np.arange(before + kept + after) - before
    inside = (i >= 0) & (i < kept)
    if mode == "wrap":
        i = i % kept
    elif mode == "reflect" and kept > 1:
        m = i % (2 * kept - 2)
        i = np.where(m < kept, m, 2 * kept - 2 - m)
    elif mode == "edge":
        i = np.clip(i, 0, kept - 1)
    return np.clip(start + i, 0, max(n - 1, 0)), inside


def _pad(node: Node) -> list[TensorType]:
    mode = node.attr("mode", "constant")
    if mode not in PAD_MODES:
        raise fail(node, f"mode {mode!r} is not one of {', '.join(PAD_MODES)}")
    begin, end = pad_amounts(node)
    shape = tuple(d + b + e for d, b, e in zip(_t(node).shape, begin, end))
    if any(d < 0 for d in shape):
        raise fail(node, f"pads {list(begin + end)} crop more than the shape {list(_t(node).shape)}")
    for axis in range(len(shape)):
        pad_source(node, axis)
    return [TensorType(_t(node).dtype, shape)]


def _eval_pad(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    x = xs[0]
    value = xs[2] if len(xs) > 2 and xs[2] is not None else np.zeros((), x.dtype)
    for axis in range(x.ndim):
        src, inside = pad_source(node, axis)
        shape = [1] * x.ndim
        shape[axis] = len(src)
        if node.attr("mode", "constant") == "constant":
            x = np.where(inside.reshape(shape), np.take(x, src, axis=axis), value).astype(x.dtype)
        else:
            x = np.take(x, src, axis=axis)
    return [x]


op("Reshape", _reshape, lambda n, xs: [xs[0].reshape(n.outputs[0].type.shape)])
op("Flatten", _flatten, lambda n, xs: [xs[0].reshape(n.outputs[0].type.shape)])
op("Squeeze", _squeeze, lambda n, xs: [xs[0].reshape(n.outputs[0].type.shape)])
op("Unsqueeze", _unsqueeze, lambda n, xs: [xs[0].reshape(n.outputs[0].type.shape)])
op("Transpose", _transpose, lambda n, xs: [np.transpose(xs[0], perm_of(n))])
op("Concat", _concat, lambda n, xs: [np.concatenate(xs, axis=n.attrs["axis"])])
op("Split", _split, lambda n, xs: np.split(xs[0], np.cumsum(split_sizes(n))[:-1],
                                           axis=n.attr("axis", 0)))
op("Slice", _slice, _eval_slice)
op("Gather", _gather, _eval_gather)
op("Expand", _expand, lambda n, xs: [xs[0] * np.ones(n.outputs[0].type.shape, xs[0].dtype)])
op("Shape", lambda n: [TensorType("i64", (len(_shape_slice(n)),))],
   lambda n, xs: [np.array(_shape_slice(n), np.int64)], from_types=True)
op("Size", lambda n: [TensorType("i64", ())],
   lambda n, xs: [np.array(_t(n).numel, np.int64)], from_types=True)
op("ConstantOfShape", _constant_of_shape, _eval_constant_of_shape)
op("Pad", _pad, _eval_pad)


def _range_values(node: Node) -> np.ndarray:
    values = [const_input(node, i, what) for i, what in enumerate(("start", "limit", "delta"))]
    if any(np.size(v) != 1 for v in values):  # one-element tensors pass as scalars (as onnxruntime)
        raise fail(node, "start, limit and delta must be scalars")
    start, limit, delta = (np.reshape(v, ()) for v in values)
    if not delta:
        raise fail(node, "delta is 0")
    count = max(int(np.ceil((limit - start) / delta)), 0)
    return (start + np.arange(count) * delta).astype(start.dtype)


def _range(node: Node) -> list[TensorType]:
    """Range's length is its value: the inputs must be known at build time, and it always folds."""
    return [TensorType(_t(node).dtype, (len(_range_values(node)),))]


op("Range", _range, lambda n, xs: [_range_values(n)])

VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


def space_depth_shapes(node: Node) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """DepthToSpace/SpaceToDepth as reshape -> transpose -> reshape: (first shape, perm, final shape)."""
    if _t(node).rank != 4:
        raise fail(node, f"needs a 4-D input, got rank {_t(node).rank}")
    n, c, h, w = _t(node).shape
    b = int(node.attrs.get("blocksize", 0))
    if node.op == "SpaceToDepth":
        if b <= 0 or h % b or w % b:
            raise fail(node, f"blocksize {b} must divide height {h} and width {w}")
        perm = (0, 1, 3, 5, 2, 4) if node.attr("mode", "DCR") == "CRD" else (0, 3, 5, 1, 2, 4)
        return (n, c, h // b, b, w // b, b), perm, (n, c * b * b, h // b, w // b)
    if b <= 0 or c % (b * b):
        raise fail(node, f"blocksize {b} squared must divide the {c} channels")
    if node.attr("mode", "DCR") == "CRD":
        return (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3), (n, c // (b * b), h * b, w * b)
    return (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2), (n, c // (b * b), h * b, w * b)


def _space_depth(node: Node) -> list[TensorType]:
    return [TensorType(_t(node).dtype, space_depth_shapes(node)[2])]


def _eval_space_depth(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    first, perm, final = space_depth_shapes(node)
    return [xs[0].reshape(first).transpose(perm).reshape(final)]


def tile_repeats(node: Node) -> tuple[int, ...]:
    repeats = tuple(int(r) for r in np.ravel(const_input(node, 1, "repeats")))
    if len(repeats) != _t(node).rank or min(repeats, default=1) < 0:
        raise fail(node, f"repeats {list(repeats)} must be {_t(node).rank} non-negative counts")
    return repeats


def _tile(node: Node) -> list[TensorType]:
    return [TensorType(_t(node).dtype, tuple(d * r for d, r in zip(_t(node).shape, tile_repeats(node))))]


def _eye_like(node: Node) -> list[TensorType]:
    if _t(node).rank != 2:
        raise fail(node, f"needs a 2-D input, got rank {_t(node).rank}")
    dtype = node.attrs.get("dtype")
    return [TensorType(dtype or _t(node).dtype, _t(node).shape)]


op("DepthToSpace", _space_depth, _eval_space_depth)
op("SpaceToDepth", _space_depth, _eval_space_depth)
op("Tile", _tile, lambda n, xs: [np.tile(xs[0], tile_repeats(n))])
op("EyeLike", _eye_like, lambda n, xs: [np.eye(*_t(n).shape, k=int(n.attr("k", 0)),
                                               dtype=DTYPES[n.outputs[0].type.dtype])], from_types=True)
