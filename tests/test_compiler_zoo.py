"""Zoo-sized models (bench/zoo_models.py): a BERT-base sized encoder (110M parameters, weights in a
safetensors file) compiles, runs and matches onnxruntime; the generators build what the zoo has."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnx_models import assert_close, run_onnxruntime

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import zoo_models  # noqa: E402


def _inlined(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The model with its declared initializers holding the weights (for onnxruntime)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.initializer[:]
    out.graph.initializer.extend(numpy_helper.from_array(a, n) for n, a in weights.items())
    return out


@pytest.mark.e2e
def test_bert_base_encoder_matches_onnxruntime(tmp_path):
    from kiln.compiler import driver
    from kiln.compiler.jit import JitModel

    model_path, weights_path = zoo_models.write_encoder(tmp_path)
    model, weights = zoo_models.encoder()
    assert zoo_models.encoder_params(weights) > 108_000_000
    jit = JitModel(driver.compile(model_path, weights=weights_path), threads=2)
    ids = np.random.default_rng(1).integers(0, zoo_models.ENCODER["vocab"], (1, 128), dtype=np.int64)
    ref = run_onnxruntime(_inlined(model, weights), {"input_ids": ids}, threads=2)[0]
    assert_close(jit.run(ids)[0], ref)


def test_zoo_cnns_have_the_zoo_layer_counts():
    resnet = zoo_models.resnet50()
    densenet = zoo_models.densenet121()
    assert sum(n.op_type == "Conv" for n in resnet.graph.node) == 53   # 49 in blocks + 4 shortcuts
    assert sum(n.op_type == "Conv" for n in densenet.graph.node) == 120  # 2 per dense layer + 3 + stem
    assert sum(n.op_type == "Concat" for n in densenet.graph.node) == 58
    params = sum(i.dims[0] * int(np.prod(i.dims[1:])) for i in resnet.graph.initializer if i.dims)
    assert 25_000_000 < params < 26_000_000
