"""Indexing ops: GatherElements, GatherND, OneHot, ScatterElements and ScatterND with indices
known only at run time, and Compress with a build-time condition. passes/decompose_index.py
rewrites each into Gather, Where and integer elementwise ops; negative indices count from the
end, as onnx allows."""
from __future__ import annotations

import numpy as np

from .graph import Node, TensorType
from .registry import const_input, fail, norm_axis, op


def _t(node: Node, i: int = 0) -> TensorType:
    return node.inputs[i].type


def _integer_indices(node: Node, i: int = 1) -> None:
    if _t(node, i).dtype not in ("i64", "i32"):
        raise fail(node, f"indices must be int64 or int32, got {_t(node, i).dtype}")


def _wrap(idx: np.ndarray, size: int | np.ndarray) -> np.ndarray:
    idx = idx.astype(np.int64)
    return np.where(idx < 0, idx + size, idx)


def _gather_elements(node: Node) -> list[TensorType]:
    data, idx = _t(node, 0), _t(node, 1)
    _integer_indices(node)
    norm_axis(node, node.attr("axis", 0), data.rank)
    if idx.rank != data.rank:
        raise fail(node, f"indices of rank {idx.rank} for data of rank {data.rank}")
    return [TensorType(data.dtype, idx.shape)]


def _eval_gather_elements(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    axis = node.attr("axis", 0) % xs[0].ndim
    return [np.take_along_axis(xs[0], _wrap(xs[1], xs[0].shape[axis]), axis=axis)]


def gather_nd_split(node: Node) -> tuple[int, int]:
    """(batch_dims, k): the leading dims data and indices share, and how many data dims an index names."""
    data, idx = _t(node, 0), _t(node, 1)
    b, k = int(node.attr("batch_dims", 0)), idx.shape[-1] if idx.rank else 0
    if idx.rank < 1 or not 0 <= b < min(idx.rank, data.rank) or data.shape[:b] != idx.shape[:b]:
        raise fail(node, f"batch_dims {b} does not fit data {list(data.shape)} and indices {list(idx.shape)}")
    if not 1 <= k <= data.rank - b:
        raise fail(node, f"index tuples of length {k} for data {list(data.shape)} past batch_dims {b}")
    return b, k


def _gather_nd(node: Node) -> list[TensorType]:
    _integer_indices(node)
    b, k = gather_nd_split(node)
    data, idx = _t(node, 0), _t(node, 1)
    return [TensorType(data.dtype, idx.shape[:-1] + data.shape[b + k:])]


def _eval_gather_nd(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    b, k = gather_nd_split(node)
    data, idx = xs
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    flat_data = data.reshape((batch,) + data.shape[b:])
    flat_idx = _wrap(idx, np.array(data.shape[b:b + k])).reshape(batch, -1, k)
    rows = [flat_data[i][tuple(flat_idx[i].T)] for i in range(batch)]
    return [np.stack(rows).reshape(node.outputs[0].type.shape)]


def one_hot_depth(node: Node) -> int:
    depth = const_input(node, 1, "depth")
    if depth is None or np.size(depth) != 1 or int(np.ravel(depth)[0]) < 1:
        raise fail(node, f"depth must be one positive number, got {depth}")
    return int(np.ravel(depth)[0])


def _one_hot(node: Node) -> list[TensorType]:
    idx, values = _t(node, 0), _t(node, 2)
    if values.numel != 2:
        raise fail(node, f"values must hold [off, on], got shape {list(values.shape)}")
    axis = norm_axis(node, node.attr("axis", -1), idx.rank + 1)
    shape = idx.shape[:axis] + (one_hot_depth(node),) + idx.shape[axis:]
    return [TensorType(values.dtype, shape)]


def _eval_one_hot(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    depth, values = one_hot_depth(node), xs[2].ravel()
    axis = node.attr("axis", -1) % (xs[0].ndim + 1)
    idx = np.expand_dims(np.where(xs[0] < 0, xs[0] + depth, xs[0]), axis)
    iota = np.arange(depth).reshape([-1 if d == axis else 1 for d in range(xs[0].ndim + 1)])
    return [np.where(idx == iota, values[1], values[0])]


op("GatherElements", _gather_elements, _eval_gather_elements)
op("GatherND", _gather_nd, _eval_gather_nd)
op("OneHot", _one_hot, _eval_one_hot)


SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")
# The scatter ops apply their updates one by one (passes/decompose_index.py), a few nodes each:
# 256 row updates of a [512, 64] ScatterND took 52 s of CPU to compile here, so past this many
# index tuples kiln refuses rather than compile for minutes.
MAX_SCATTER_UPDATES = 64


def scatter_targets(node: Node) -> tuple[int, int]:
    """(update count, elements each update writes) after checking the inputs fit together."""
    data, idx, upd = _t(node, 0), _t(node, 1), _t(node, 2)
    _integer_indices(node)
    if node.attr("reduction", "none") not in SCATTER_REDUCTIONS:
        raise fail(node, f"reduction {node.attr('reduction')!r} is not one of {', '.join(SCATTER_REDUCTIONS)}")
    if upd.dtype != data.dtype:
        raise fail(node, f"updates of dtype {upd.dtype} for data of dtype {data.dtype}")
    if node.op == "ScatterND":
        k = idx.shape[-1] if idx.rank else 0
        if not 1 <= k <= data.rank or upd.shape != idx.shape[:-1] + data.shape[k:]:
            raise fail(node, f"indices {list(idx.shape)} and updates {list(upd.shape)} do not fit data "
                             f"{list(data.shape)}")
        count, width = int(np.prod(idx.shape[:-1], dtype=np.int64)), int(np.prod(data.shape[k:], dtype=np.int64))
    else:
        norm_axis(node, node.attr("axis", 0), data.rank)
        if idx.shape != upd.shape or idx.rank != data.rank:
            raise fail(node, f"indices {list(idx.shape)} and updates {list(upd.shape)} must have one shape "
                             f"of data's rank {data.rank}")
        count, width = idx.numel, 1
    if count > MAX_SCATTER_UPDATES:
        raise fail(node, f"{count} updates are not supported (at most {MAX_SCATTER_UPDATES}: kiln applies "
                         "them one by one)")
    return count, width


def _scatter(node: Node) -> list[TensorType]:
    scatter_targets(node)
    return [_t(node)]


COMBINE = {"none": lambda a, b: b, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _eval_scatter(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    data, idx, upd = xs
    out, combine = data.copy(), COMBINE[node.attr("reduction", "none")]
    if node.op == "ScatterND":
        k = idx.shape[-1]
        for where, value in zip(_wrap(idx, np.array(data.shape[:k])).reshape(-1, k),
                                upd.reshape((-1,) + data.shape[k:])):
            out[tuple(where)] = combine(out[tuple(where)], value)
        return [out]
    axis = node.attr("axis", 0) % data.ndim
    for pos in np.ndindex(*idx.shape):
        where = list(pos)
        where[axis] = int(_wrap(idx[pos], data.shape[axis]))
        out[tuple(where)] = combine(out[tuple(where)], upd[pos])
    return [out]


op("ScatterElements", _scatter, _eval_scatter)
op("ScatterND", _scatter, _eval_scatter)


def compress_indices(node: Node) -> tuple[np.ndarray, int | None]:
    """The positions the (build-time) condition keeps, and the axis (None: of the flattened input)."""
    x, axis = _t(node), node.attr("axis", None)
    cond = np.ravel(const_input(node, 1, "the condition")).astype(bool)
    axis = None if axis is None else norm_axis(node, axis, x.rank)
    keep = np.flatnonzero(cond[:x.numel if axis is None else x.shape[axis]])
    if keep.size == 0:
        raise fail(node, "the condition keeps nothing; kiln does not support empty tensors")
    return keep.astype(np.int64), axis


def _compress(node: Node) -> list[TensorType]:
    keep, axis = compress_indices(node)
    shape = _t(node).shape
    kept = (keep.size,) if axis is None else shape[:axis] + (keep.size,) + shape[axis + 1:]
    return [TensorType(_t(node).dtype, kept)]


def _eval_compress(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    keep, axis = compress_indices(node)
    return [np.take(xs[0].ravel() if axis is None else xs[0], keep, axis=axis or 0)]


op("Compress", _compress, _eval_compress)


def tensor_scatter_axis(node: Node) -> int:
    """The sequence axis, after checking update fits past_cache (shorter or equal along it)."""
    past, upd = _t(node, 0), _t(node, 1)
    axis = norm_axis(node, node.attr("axis", -2), past.rank)
    if node.attr("mode", "linear") not in ("linear", "circular"):
        raise fail(node, f"mode {node.attr('mode')!r} is not linear or circular")
    fits = upd.rank == past.rank and all(u == p if d != axis else u <= p
                                         for d, (u, p) in enumerate(zip(upd.shape, past.shape)))
    if axis == 0 or not fits or upd.dtype != past.dtype:
        raise fail(node, f"update {upd} does not fit past_cache {past} along axis {axis}")
    return axis


def _eval_tensor_scatter(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    past, upd = xs[0], xs[1]
    axis, out = tensor_scatter_axis(node), past.copy()
    starts = xs[2] if len(xs) > 2 and xs[2] is not None else np.zeros(past.shape[0], np.int64)
    wrap = past.shape[axis] if node.attr("mode", "linear") == "circular" else None
    for prefix in np.ndindex(*past.shape[:axis]):
        for i in range(upd.shape[axis]):
            j = starts[prefix[0]] + i
            out[prefix + (j % wrap if wrap else j,)] = upd[prefix + (i,)]
    return [out]


def _tensor_scatter(node: Node) -> list[TensorType]:
    tensor_scatter_axis(node)
    return [_t(node)]


op("TensorScatter", _tensor_scatter, _eval_tensor_scatter)
