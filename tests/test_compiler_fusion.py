"""Kernels the CPU backend makes of several nodes, on thread counts whose shares of work split
them mid-image, and on every x86-64 feature level, against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from onnx_models import check, pointwise_depthwise

from kiln.compiler.backend.cpu.k_pointwise_depthwise import pair_pointwise_depthwise
from kiln.compiler.frontend.onnx import load_onnx
from kiln.compiler.passes.pipeline import run_pipeline


@pytest.mark.parametrize("batch,k,stride,threads,variant", [
    (1, 3, 1, 1, None), (2, 3, 2, 3, None), (1, 5, 2, 2, "x86-64-v3"), (2, 3, 1, 2, "x86-64-v2")])
def test_pointwise_then_depthwise(tmp_path, batch, k, stride, threads, variant):
    """The 1x1 conv's rows go through a ring that each thread refills from its first output row."""
    x = np.random.default_rng(3).uniform(-2, 2, (batch, 8, 48, 44)).astype(np.float32)
    check(pointwise_depthwise(batch, k, stride), {"x": x}, tmp_path, variant, threads=threads)
    ops = [n.op for n in pair_pointwise_depthwise(run_pipeline(load_onnx(tmp_path / "model.onnx", None, batch)))]
    assert ops.count("PointwiseDepthwise") == 1 and "Conv" not in ops


def test_small_intermediate_stays_two_kernels(tmp_path):
    """Under 1 MiB the intermediate stays in L2 anyway: no fused kernel, same results."""
    model = pointwise_depthwise(1, 3, 1)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 16
    x = np.random.default_rng(4).uniform(-2, 2, (1, 8, 16, 44)).astype(np.float32)
    check(model, {"x": x}, tmp_path)
    ops = [n.op for n in pair_pointwise_depthwise(run_pipeline(load_onnx(tmp_path / "model.onnx", None, 1)))]
    assert "PointwiseDepthwise" not in ops and ops.count("Conv") == 2
