"""AffineGrid: the sampling grid of a batch of affine matrices over a build-time output size."""
from __future__ import annotations

import numpy as np

from .graph import Node, TensorType
from .registry import const_input, fail, op


def grid_spatial(node: Node) -> tuple[int, ...]:
    """The output's spatial dims ([H, W] or [D, H, W]) from `size` = [N, C, spatial...]."""
    theta = node.inputs[0].type
    size = [int(d) for d in np.ravel(const_input(node, 1, "size"))]
    dims = len(size) - 2
    if dims not in (2, 3) or theta.shape[1:] != (dims, dims + 1) or theta.shape[0] != size[0]:
        raise fail(node, f"theta {list(theta.shape)} and size {size} are neither 2-D ([N, 2, 3], [N, C, H, W]) "
                         "nor 3-D ([N, 3, 4], [N, C, D, H, W])")
    if min(size) < 1:
        raise fail(node, f"size {size} has an empty dimension; kiln does not support empty tensors")
    return tuple(size[2:])


def base_grid(node: Node) -> np.ndarray:
    """[positions, dims + 1]: each output position's (x, y[, z], 1) in [-1, 1], x along the last
    dim; pixel centres at -1 and 1 with align_corners, else the outer edges there."""
    spatial = grid_spatial(node)
    if node.attr("align_corners", 0):
        axes = [np.linspace(-1.0, 1.0, n) for n in spatial]
    else:
        axes = [(2 * np.arange(n) + 1) / n - 1 for n in spatial]
    coords = np.meshgrid(*axes, indexing="ij")[::-1]
    return np.stack([c.ravel() for c in coords] + [np.ones(int(np.prod(spatial)))], axis=1)


def _infer(node: Node) -> list[TensorType]:
    theta = node.inputs[0].type
    if theta.dtype != "f32":
        raise fail(node, f"theta must be float, got {theta.dtype}")
    spatial = grid_spatial(node)
    return [TensorType("f32", (theta.shape[0],) + spatial + (len(spatial),))]


def _evaluate(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    grid = np.matmul(base_grid(node), np.transpose(xs[0].astype(np.float64), (0, 2, 1)))
    return [grid.reshape(node.outputs[0].type.shape).astype(np.float32)]


op("AffineGrid", _infer, _evaluate, lambda n: 2 * n.outputs[0].type.numel * (n.outputs[0].type.shape[-1] + 1))


GRID_SAMPLE_MODES = {"linear": "linear", "bilinear": "linear", "nearest": "nearest", "cubic": "cubic",
                     "bicubic": "cubic"}
PADDING_MODES = ("zeros", "border", "reflection")


def grid_sample_mode(node: Node) -> tuple[str, str]:
    """(linear | nearest | cubic, padding mode), opset 16's names mapped to opset 20's."""
    mode, padding = node.attr("mode", "linear"), node.attr("padding_mode", "zeros")
    if mode not in GRID_SAMPLE_MODES:
        raise fail(node, f"mode {mode!r} is not supported (supported: {', '.join(GRID_SAMPLE_MODES)})")
    if padding not in PADDING_MODES:
        raise fail(node, f"unsupported padding_mode {padding!r} (supported: {', '.join(PADDING_MODES)})")
    return GRID_SAMPLE_MODES[mode], padding


def _grid_sample(node: Node) -> list[TensorType]:
    x, grid = node.inputs[0].type, node.inputs[1].type
    grid_sample_mode(node)
    spatial = x.rank - 2
    if spatial < 1 or grid.rank != x.rank or grid.shape[-1] != spatial or grid.shape[0] != x.shape[0]:
        raise fail(node, f"input {list(x.shape)} and grid {list(grid.shape)} do not match "
                         "([N, C, spatial...] and [N, out spatial..., number of spatial dims])")
    if x.dtype != "f32" or grid.dtype != "f32":
        raise fail(node, f"input and grid must be float, got {x.dtype} and {grid.dtype}")
    return [TensorType("f32", x.shape[:2] + grid.shape[1:-1])]


op("GridSample", _grid_sample)
