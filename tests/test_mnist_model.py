"""The committed mnist example models: graph contract, held-out accuracy, samples.

Uses onnx, onnxruntime, safetensors and numpy only (no torch). The models come
from examples/mnist/train.py, the samples from examples/mnist/make_samples.py.
"""

import gzip
import os

import numpy as np
import onnx
import pytest
from tool_skips import MISSING_TOOL
from safetensors import safe_open

ort = pytest.importorskip("onnxruntime", reason=MISSING_TOOL + "onnxruntime (pip install -e '.[test]')")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(REPO, "examples", "mnist")
DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "mnist")
N_TRAIN = 8000  # train.py trains on the first 8,000 t10k images; the last 2,000 are held out

# Held-out accuracy measured when the committed weights were trained, minus 0.5%.
MIN_ACCURACY = {"mnist": 0.9865, "mlp": 0.977}
ALLOWED_OPS = {"Sub", "Div", "Conv", "Relu", "MaxPool", "Flatten", "Gemm"}
MAX_FILE_BYTES = 5_000_000
MODELS = ["mnist", "mlp"]


def paths(name):
    return os.path.join(MNIST, f"{name}.onnx"), os.path.join(MNIST, f"{name}.safetensors")


def graph_weight_names(graph):
    """Node inputs that no node or graph input produces: the weights the graph expects."""
    produced = {i.name for i in graph.input} | {o for n in graph.node for o in n.output}
    return {i for n in graph.node for i in n.input if i and i not in produced}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    rank = raw[3]
    dims = np.frombuffer(raw, ">u4", rank, 4).astype(int)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    """(name, ModelProto without weight bytes, onnxruntime session reading the weights from safetensors)."""
    onnx_path, _ = paths(request.param)
    bare = onnx.load(onnx_path, load_external_data=False)
    full = onnx.load(onnx_path)  # the initializers' external data lives in the safetensors file
    onnx.checker.check_model(full, full_check=True)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return request.param, bare, sess


@pytest.fixture(scope="module")
def held_out():
    images = os.path.join(DATA, "t10k-images-idx3-ubyte.gz")
    labels = os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")
    if not (os.path.exists(images) and os.path.exists(labels)):
        pytest.skip(f"MNIST t10k files not found under {DATA}")
    x = read_idx(images)[N_TRAIN:].astype(np.float32)[:, None] / 255.0
    y = read_idx(labels)[N_TRAIN:].astype(np.int64)
    assert x.shape == (2000, 1, 28, 28) and y.shape == (2000,)
    return x, y


@pytest.mark.parametrize("name", MODELS)
def test_files_are_small(name):
    for path in paths(name):
        assert os.path.getsize(path) < MAX_FILE_BYTES, path


@pytest.mark.parametrize("name", MODELS)
def test_weights_match_graph(name):
    onnx_path, st_path = paths(name)
    graph = onnx.load(onnx_path, load_external_data=False).graph
    locations = {e.value for i in graph.initializer for e in i.external_data if e.key == "location"}
    assert locations == {os.path.basename(st_path)}, "weight bytes belong in the safetensors file"
    with safe_open(st_path, "np") as f:
        assert set(f.keys()) == graph_weight_names(graph)
        for key in f.keys():
            assert f.get_slice(key).get_dtype() == "F32", key


def test_graph_contract(model):
    name, bare, _ = model
    assert [(o.domain, o.version) for o in bare.opset_import] == [("", 17)]
    assert {n.op_type for n in bare.graph.node} <= ALLOWED_OPS
    (inp,), (out,) = bare.graph.input, bare.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, inp.type.tensor_type.elem_type, dims(inp)) == ("input", onnx.TensorProto.FLOAT, ["batch", 1, 28, 28])
    assert (out.name, out.type.tensor_type.elem_type, dims(out)) == ("logits", onnx.TensorProto.FLOAT, ["batch", 10])


def test_held_out_accuracy(model, held_out):
    name, _, sess = model
    x, y = held_out
    logits = sess.run(["logits"], {"input": x})[0]
    assert logits.shape == (2000, 10)
    accuracy = float((logits.argmax(1) == y).mean())
    assert accuracy >= MIN_ACCURACY[name], f"{name}: held-out accuracy {accuracy:.4f}"


def test_batch_one_matches_batch(model, held_out):
    _, _, sess = model
    x = held_out[0][:8]
    batched = sess.run(["logits"], {"input": x})[0]
    single = np.concatenate([sess.run(["logits"], {"input": x[i:i + 1]})[0] for i in range(8)])
    np.testing.assert_allclose(single, batched, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("digit", range(10))
def test_sample_is_classified(model, digit):
    name, _, sess = model
    x = np.load(os.path.join(MNIST, "samples", f"digit_{digit}.npy"))
    assert x.dtype == np.float32 and x.shape == (1, 1, 28, 28)
    assert 0.0 <= x.min() and x.max() <= 1.0
    predicted = int(sess.run(["logits"], {"input": x})[0].argmax())
    assert predicted == digit, f"{name} reads samples/digit_{digit}.npy as {predicted}"


@pytest.mark.parametrize("digit", range(10))
def test_sample_pgm_matches_npy(digit):
    header = b"P5\n28 28\n255\n"
    with open(os.path.join(MNIST, "samples", f"digit_{digit}.pgm"), "rb") as f:
        data = f.read()
    assert data.startswith(header) and len(data) == len(header) + 28 * 28
    img = np.frombuffer(data[len(header):], np.uint8).reshape(28, 28)
    x = np.load(os.path.join(MNIST, "samples", f"digit_{digit}.npy"))[0, 0]
    assert np.abs(img / 255.0 - x).max() <= 0.5 / 255 + 1e-6
