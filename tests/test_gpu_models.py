"""The example models through the GPU kernel descriptions (lowered to CPU loops) against
onnxruntime, and how many launches one inference takes."""
from __future__ import annotations

import numpy as np
import pytest

import onnx_models as M
from gpu_harness import emulate
from onnx_models import assert_close, run_onnxruntime

# launches per inference: one per fused op group
KERNELS = {"mlp": 3, "mnist_cnn": 6, "resnet": 13, "mobilenet_v2": 19, "transformer": 30, "alexnet_like": 20}


def _feeds(model) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {v.name: rng.standard_normal([d.dim_value or 1 for d in v.type.tensor_type.shape.dim])
            .astype(np.float32) for v in model.graph.input}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_model_matches_onnxruntime(tmp_path, name):
    model = getattr(M, name)()
    feeds = _feeds(model)
    got, kernels = emulate(model, feeds, tmp_path)
    for g, r in zip(got, run_onnxruntime(model, feeds)):
        assert_close(g, r)
    assert len(kernels) == KERNELS[name]


def test_batch(tmp_path):
    model = M.mlp()
    feeds = {"input": np.random.default_rng(3).standard_normal((5, 1, 28, 28)).astype(np.float32)}
    got, _ = emulate(model, feeds, tmp_path, batch=5)
    assert_close(got[0], run_onnxruntime(model, feeds)[0])
