"""MaxPool's Indices output, MaxUnpool and ReverseSequence: ops that move elements to positions
computed from the data or another input. passes/decompose_unpool.py rewrites them into Gather,
ArgMax, ScatterFlat and integer arithmetic, so their types and reference values live here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Node, TensorType
from .ops_nn import Window
from .registry import const_input, fail, op


def pool_taps(w: Window, storage_order: int) -> tuple[np.ndarray, np.ndarray]:
    """For every (kernel tap, output position) of a pooling window, in scan order: the flat input
    position it reads (prod(size) where it falls in the padding) and that position's index in the
    storage order (0: row-major; 1: column-major, as onnxruntime's Indices)."""
    out = np.stack(np.meshgrid(*(np.arange(o) for o in w.out), indexing="ij"), -1).reshape(-1, len(w.out))
    taps = np.stack(np.meshgrid(*(np.arange(k) for k in w.kernel), indexing="ij"), -1).reshape(-1, len(w.kernel))
    coords = (out[None] * np.array(w.strides) - np.array(w.pads_begin)
              + taps[:, None] * np.array(w.dilations))                    # [K, P, nd]
    inside = ((coords >= 0) & (coords < np.array(w.size))).all(-1)
    clipped = np.clip(coords, 0, np.array(w.size) - 1)
    flat = np.ravel_multi_index(tuple(np.moveaxis(clipped, -1, 0)), w.size)
    stored = np.ravel_multi_index(tuple(np.moveaxis(clipped, -1, 0)), w.size, order="F" if storage_order else "C")
    return np.where(inside, flat, int(np.prod(w.size))).astype(np.int64), stored.astype(np.int64)


@dataclass(frozen=True)
class Unpool:
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    out: tuple[int, ...]   # the output's full shape


def unpool(node: Node) -> Unpool:
    x, idx = node.inputs[0].type, node.inputs[1].type
    nd = x.rank - 2
    kernel = tuple(node.attr("kernel_shape", ()))
    strides = tuple(node.attr("strides") or (1,) * nd)
    pads = tuple(node.attr("pads") or (0,) * (2 * nd))
    if nd < 1 or len(kernel) != nd or len(strides) != nd or len(pads) != 2 * nd:
        raise fail(node, f"kernel_shape, strides and pads do not fit input {x}")
    if idx.shape != x.shape or idx.dtype != "i64":
        raise fail(node, f"indices {idx} must be i64 of the input's shape {list(x.shape)}")
    given = const_input(node, 2, "output_shape")
    if given is not None:
        out = tuple(int(d) for d in np.ravel(given))
        if len(out) != x.rank or out[:2] != x.shape[:2]:
            raise fail(node, f"output_shape {list(out)} does not fit input {x}")
    else:
        out = x.shape[:2] + tuple((s - 1) * st + k - b - e for s, st, k, b, e
                                  in zip(x.shape[2:], strides, kernel, pads[:nd], pads[nd:]))
    if min(out) < 1:
        raise fail(node, f"pads {list(pads)} leave an empty output")
    return Unpool(kernel, strides, pads, out)


def _max_unpool(node: Node) -> list[TensorType]:
    return [TensorType(node.inputs[0].type.dtype, unpool(node).out)]


def _eval_max_unpool(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    out = np.zeros(unpool(node).out, xs[0].dtype)
    out.reshape(-1)[xs[1].reshape(-1)] = xs[0].reshape(-1)
    return [out]


op("MaxUnpool", _max_unpool, _eval_max_unpool)


def _scatter_flat(node: Node) -> list[TensorType]:
    values, positions = node.inputs[0].type, node.inputs[1].type
    if values.rank != 1 or positions.shape != values.shape or positions.dtype != "i64":
        raise fail(node, f"needs values [n] and i64 positions [n], got {values} and {positions}")
    return [TensorType(values.dtype, (int(node.attrs["size"]),))]


def _eval_scatter_flat(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    values, positions = xs
    out = np.zeros(node.attrs["size"], values.dtype)
    inside = (positions >= 0) & (positions < out.size)
    out[positions[inside]] = values[inside]
    return [out]


# zeros of `size` with values[i] written at positions[i] (positions outside [0, size) write
# nothing; of repeated positions, any one write lands): MaxUnpool's scatter, a kernel of each backend
op("ScatterFlat", _scatter_flat, _eval_scatter_flat)


def reverse_axes(node: Node) -> tuple[int, int]:
    """(batch_axis, time_axis): 0 and 1 in either order."""
    axes = node.attr("batch_axis", 1), node.attr("time_axis", 0)
    if sorted(axes) != [0, 1]:
        raise fail(node, f"batch_axis {axes[0]} and time_axis {axes[1]} must be 0 and 1")
    return axes


def _reverse_sequence(node: Node) -> list[TensorType]:
    x, lens = node.inputs[0].type, node.inputs[1].type
    batch, _ = reverse_axes(node)
    if x.rank < 2 or lens.dtype != "i64" or lens.shape != (x.shape[batch],):
        raise fail(node, f"sequence_lens {lens} must be i64 [{x.shape[batch] if x.rank > batch else '?'}] "
                         f"for input {x}")
    return [x]


def _eval_reverse_sequence(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    batch, time = reverse_axes(node)
    x = np.moveaxis(xs[0], (batch, time), (0, 1))
    out = x.copy()
    for b, n in enumerate(xs[1]):
        out[b, :n] = x[b, :n][::-1]
    return [np.moveaxis(out, (0, 1), (batch, time))]


op("ReverseSequence", _reverse_sequence, _eval_reverse_sequence)
