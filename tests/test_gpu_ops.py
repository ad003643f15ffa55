"""Every operator test of the CPU backend (test_compiler_ops), run instead through the GPU kernel
descriptions lowered to CPU loops, against onnxruntime."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import test_compiler_ops
from gpu_harness import check_gpu, emulate
from onnx_models import single_op
from test_compiler_ops import *  # noqa: F401,F403 - the same cases, collected again here

del test_variants  # noqa: F821 - CPU feature levels; GPU kernels have none


@pytest.fixture(autouse=True)
def _through_gpu_kernels(monkeypatch):
    monkeypatch.setattr(test_compiler_ops, "check", check_gpu)
    monkeypatch.setattr(test_compiler_ops, "check_reference",
                        functools.partial(test_compiler_ops.check_reference, run=lambda m, f, w: emulate(m, f, w)[0]))



@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_max_min_propagate_nan_in_gpu_kernels(tmp_path, op):
    """As test_reduce_max_min_propagate_nan: NaN anywhere in a slice (warp shuffles, shared memory)."""
    x = np.random.default_rng(3).uniform(-2, 2, (4, 300)).astype(np.float32)
    x[0, 200], x[1, 0], x[2, 77], x[3, 299] = np.nan, np.nan, np.inf, -np.inf
    model = single_op(op, [("x", x, False), ("axes", np.array([1], np.int64), True)], opset=18, keepdims=0)
    got = emulate(model, {"x": x}, tmp_path)[0][0]
    np.testing.assert_array_equal(got, (np.max if op == "ReduceMax" else np.min)(x, axis=1))
