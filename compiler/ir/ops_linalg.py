"""Det: the determinant of each square matrix in the last two dims."""
from __future__ import annotations

import numpy as np

from .graph import Node, TensorType
from .registry import fail, op

# LU unrolled into IR ops costs a few dozen ops per column: past this size a model wants a kernel.
MAX_DET_SIZE = 64


def _det(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    if x.rank < 2 or x.shape[-1] != x.shape[-2]:
        raise fail(node, f"input {list(x.shape)} is not a (batch of) square matrices [..., M, M]")
    if x.dtype != "f32":
        raise fail(node, f"input must be float, got {x.dtype}")
    if x.shape[-1] > MAX_DET_SIZE:
        raise fail(node, f"matrices of size {x.shape[-1]} are not supported (kiln unrolls LU into up to "
                         f"{MAX_DET_SIZE} steps)")
    return [TensorType("f32", x.shape[:-2])]


def _evaluate(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.linalg.det(xs[0].astype(np.float64)).astype(np.float32)]


op("Det", _det, _evaluate, lambda n: n.inputs[0].type.numel * n.inputs[0].type.shape[-1])
