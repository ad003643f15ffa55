"""Sequence ops: the recurrent family (RNN, GRU, LSTM), cumulative sums and products, TopK.

All are decomposed into ops every backend lowers (passes/decompose_seq.py); here they get their
output types, build-time values where cheap, and their cost."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Node, TensorType
from .registry import const_input, fail, norm_axis, op

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


@dataclass(frozen=True)
class RecurrentShape:
    seq: int
    batch: int
    input: int
    hidden: int
    directions: int
    layout: int  # 0: [seq, batch, ...]; 1: [batch, seq, ...]


def recurrent_shape(node: Node) -> RecurrentShape:
    x, w = node.inputs[0].type, node.inputs[1].type
    if x.rank != 3 or x.dtype != "f32":
        raise fail(node, f"X must be a 3-D f32 tensor, got {x}")
    layout = int(node.attr("layout", 0))
    seq, batch = (x.shape[1], x.shape[0]) if layout else x.shape[:2]
    directions = 2 if node.attr("direction", "forward") == "bidirectional" else 1
    if node.attr("direction", "forward") not in ("forward", "reverse", "bidirectional"):
        raise fail(node, f"unknown direction {node.attr('direction')}")
    hidden = int(node.attr("hidden_size", node.inputs[2].type.shape[-1]))
    if w.shape != (directions, GATES[node.op] * hidden, x.shape[2]):
        raise fail(node, f"W has shape {list(w.shape)}, expected "
                         f"{[directions, GATES[node.op] * hidden, x.shape[2]]}")
    lens = node.inputs[4] if len(node.inputs) > 4 else None
    if lens is not None and lens.const is None:
        raise fail(node, "sequence_lens must be known at build time (a constant); "
                         "drop it to run every sequence to its full length")
    return RecurrentShape(seq, batch, x.shape[2], hidden, directions, layout)


def _recurrent(node: Node) -> list[TensorType]:
    s = recurrent_shape(node)
    state = (s.batch, s.directions, s.hidden) if s.layout else (s.directions, s.batch, s.hidden)
    y = (s.batch, s.seq, s.directions, s.hidden) if s.layout else (s.seq, s.directions, s.batch, s.hidden)
    count = 3 if node.op == "LSTM" else 2
    return [TensorType("f32", shape) for shape in (y, state, state)][:count]


def _recurrent_flops(node: Node) -> int:
    s, gates = recurrent_shape(node), GATES[node.op]
    return 2 * s.seq * s.batch * s.directions * gates * s.hidden * (s.input + s.hidden)


def scan_axis(node: Node) -> int:
    axis = const_input(node, 1, "axis")
    if axis is None:
        raise fail(node, "needs an axis input")
    return norm_axis(node, int(np.asarray(axis).ravel()[0]), node.inputs[0].type.rank)


def _cumulative(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    if x.dtype == "bool" or x.rank == 0:
        raise fail(node, f"expects a number tensor of rank 1 or more, got {x}")
    scan_axis(node)
    return [x]


def _eval_cumulative(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    x, axis = xs[0], scan_axis(node)
    scan = np.cumsum if node.op == "CumSum" else np.cumprod
    if node.attr("reverse", 0):
        x = np.flip(x, axis)
    y = scan(x, axis=axis, dtype=x.dtype)
    if node.attr("exclusive", 0):
        first = np.full_like(np.take(y, [0], axis=axis), 0 if node.op == "CumSum" else 1)
        y = np.concatenate([first, np.take(y, range(x.shape[axis] - 1), axis=axis)], axis=axis)
    return [np.flip(y, axis) if node.attr("reverse", 0) else y]


def top_k(node: Node) -> tuple[int, int]:
    """(axis, k), checked against the input."""
    x = node.inputs[0].type
    axis = norm_axis(node, int(node.attr("axis", -1)), x.rank)
    k = const_input(node, 1, "K")
    if k is None:
        raise fail(node, "needs a K input")
    k = int(np.asarray(k).ravel()[0])
    if not 0 < k <= x.shape[axis]:
        raise fail(node, f"K = {k} is outside 1..{x.shape[axis]} (the size of axis {axis})")
    return axis, k


def _top_k(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    if x.dtype == "bool":
        raise fail(node, "expects a number input, got bool")
    axis, k = top_k(node)
    shape = tuple(k if i == axis else d for i, d in enumerate(x.shape))
    return [TensorType(x.dtype, shape), TensorType("i64", shape)]


op("RNN", _recurrent, flops=_recurrent_flops)
op("GRU", _recurrent, flops=_recurrent_flops)
op("LSTM", _recurrent, flops=_recurrent_flops)
op("CumSum", _cumulative, _eval_cumulative, lambda n: n.outputs[0].type.numel)
op("CumProd", _cumulative, _eval_cumulative, lambda n: n.outputs[0].type.numel)
op("TopK", _top_k, flops=lambda n: n.inputs[0].type.numel * n.inputs[0].type.shape[top_k(n)[0]])
