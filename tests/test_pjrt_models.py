"""The example models through StableHLO and the launcher on XLA's CPU PJRT plugin, against
onnxruntime; and the real MNIST model from examples/ on its samples."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnx_models
import pjrt_harness
from conftest import REPO
from onnx_models import assert_close

pytestmark = pytest.mark.e2e
MNIST = REPO / "examples" / "mnist"


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    return pjrt_harness.link_launcher(tmp_path_factory.mktemp("pjrt-launcher"))


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d.dim_value or 1 for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in model.graph.input}


@pytest.mark.parametrize("name", ["mlp", "mnist_cnn", "resnet", "mobilenet_v2", "transformer", "alexnet_like"])
def test_example_model(launcher, tmp_path, name):
    model = getattr(onnx_models, name)()
    pjrt_harness.check(launcher, model, feeds_for(model), tmp_path)


def test_mnist_with_safetensors_weights(launcher, tmp_path):
    import onnxruntime as ort

    exe = pjrt_harness.bundle_file(launcher, MNIST / "mnist.onnx", MNIST / "mnist.safetensors", tmp_path, "mnist")
    model = onnx.load(str(MNIST / "mnist.onnx"), load_external_data=False)
    x = np.random.default_rng(3).uniform(0, 1, (1, 1, 28, 28)).astype(np.float32)
    got = pjrt_harness.run_model(exe, model, {model.graph.input[0].name: x})
    # onnxruntime reads the initializers' external data from the safetensors file beside the model
    session = ort.InferenceSession(str(MNIST / "mnist.onnx"), providers=["CPUExecutionProvider"])
    ref = session.run(None, {model.graph.input[0].name: x})
    assert_close(got[0].reshape(ref[0].shape), ref[0])


def test_mnist_classifies_its_samples(launcher, tmp_path):
    exe = pjrt_harness.bundle_file(launcher, MNIST / "mnist.onnx", MNIST / "mnist.safetensors", tmp_path, "mnist")
    samples = sorted((MNIST / "samples").glob("*.pgm"))
    assert samples
    for sample in samples[:3]:
        done = pjrt_harness.run(exe, ["--pgm", str(sample)])
        assert done.returncode == 0, done.stderr
        assert "platform cpu-xla" in done.stderr
