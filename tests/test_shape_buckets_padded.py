"""model(shapes = [...], pad_values = {...}): one shape bucket per entry of input shapes in one launcher;
a run takes the smallest bucket its inputs fit, padding a sequence only for inputs given a pad value,
and cuts the outputs back along the dims that follow the padded ones."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.compiler.driver import compile
from kiln.compiler.errors import CompileError
from onnx_models import run_onnxruntime

HIDDEN, VOCAB, POSITIONS = 16, 50, 128
SHAPES = '[{"input_ids": [1, 64], "attention_mask": [1, 64]}, {"input_ids": [1, 16], "attention_mask": [1, 16]}]'


def encoder() -> onnx.ModelProto:
    """A one-layer BERT-like encoder over [1, seq] token ids: token + position embeddings, LayerNorm,
    single-head attention with the additive mask (1 - attention_mask) * -10000, a residual and LayerNorm."""
    rng = np.random.default_rng(0)
    consts = {"E": rng.standard_normal((VOCAB, HIDDEN)), "P": rng.standard_normal((POSITIONS, HIDDEN)),
              "Wq": rng.standard_normal((HIDDEN, HIDDEN)) / 4, "Wk": rng.standard_normal((HIDDEN, HIDDEN)) / 4,
              "Wv": rng.standard_normal((HIDDEN, HIDDEN)) / 4, "gamma": 1 + rng.standard_normal(HIDDEN) / 10,
              "beta": rng.standard_normal(HIDDEN) / 10, "scale": np.array(HIDDEN ** -0.5),
              "one": np.array(1.0), "big": np.array(-10000.0)}
    weights = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()]
    weights += [numpy_helper.from_array(np.array(v, np.int64), k)
                for k, v in (("zero", [0]), ("one_i", [1]), ("two_i", [2]), ("axes1", [1]))]
    node = helper.make_node
    nodes = [
        node("Gather", ["E", "input_ids"], ["tok"]),
        node("Shape", ["input_ids"], ["ids_shape"]), node("Slice", ["ids_shape", "one_i", "two_i"], ["seq"]),
        node("Slice", ["P", "zero", "seq"], ["pos"]), node("Add", ["tok", "pos"], ["emb"]),
        node("LayerNormalization", ["emb", "gamma", "beta"], ["h"], axis=-1, epsilon=1e-5),
        node("MatMul", ["h", "Wq"], ["q"]), node("MatMul", ["h", "Wk"], ["k"]), node("MatMul", ["h", "Wv"], ["v"]),
        node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), node("MatMul", ["q", "kt"], ["qk"]),
        node("Mul", ["qk", "scale"], ["scores"]),
        node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT), node("Sub", ["one", "maskf"], ["inv"]),
        node("Mul", ["inv", "big"], ["bias2"]), node("Unsqueeze", ["bias2", "axes1"], ["bias"]),
        node("Add", ["scores", "bias"], ["masked"]), node("Softmax", ["masked"], ["attn"], axis=-1),
        node("MatMul", ["attn", "v"], ["ctx"]), node("Add", ["ctx", "h"], ["res"]),
        node("LayerNormalization", ["res", "gamma", "beta"], ["hidden"], axis=-1, epsilon=1e-5),
    ]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, [1, "seq"]) for n in ("input_ids", "attention_mask")]
    graph = helper.make_graph(nodes, "encoder", inputs,
                              [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, "seq", HIDDEN])],
                              weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _entries(*seqs: int) -> list[dict]:
    return [{"input_ids": [1, s], "attention_mask": [1, s]} for s in seqs]


def test_the_compile_records_the_buckets_smallest_first_with_the_dims_outputs_follow(tmp_path):
    onnx.save(encoder(), tmp_path / "encoder.onnx")
    compiled = compile(tmp_path / "encoder.onnx", shapes=_entries(64, 16),
                       pad_values={"input_ids": 0, "attention_mask": 0})
    buckets = compiled.manifest["buckets"]
    assert [b["inputs"][0]["shape"] for b in buckets] == [[1, 16], [1, 64]]
    assert buckets[0]["inputs"][1]["pad_value"] == 0
    assert buckets[1]["outputs"][0]["follows"] == [["input_ids", 0], ["input_ids", 1], None]
    assert compiled.manifest["inputs"][0]["shape"] == [1, 16]


@pytest.mark.parametrize("shapes,pads,message", [
    (_entries(16, 16), {}, "shapes: entries 0 and 1 give the same shapes"),
    ([{"input_ids": [1, 16], "mask": [1, 16]}], {}, "shapes entry {'input_ids': [1, 16], 'mask': [1, 16]}: "
     "input_shapes names mask, which is not an input"),
    ([{"input_ids": [16], "attention_mask": [1, 16]}], {}, "shapes entry {'input_ids': [16], 'attention_mask': [1, 16]}: "
     "input_shapes gives input_ids the shape [16]; encoder.onnx declares rank 2"),
    (_entries(16, 64), {"token_type_ids": 0}, "pad_values names token_type_ids, which is not an input"),
])
def test_bad_shapes_are_one_line_naming_the_model(tmp_path, shapes, pads, message):
    onnx.save(encoder(), tmp_path / "encoder.onnx")
    with pytest.raises(CompileError) as error:
        compile(tmp_path / "encoder.onnx", shapes=shapes, pad_values=pads)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_output_dim_that_varies_but_follows_no_input_is_an_error(tmp_path):
    """Concat([x, x]) along the sequence: the output dim is 2 * seq, which no input dim is."""
    graph = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["y"], axis=1)], "twice",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "s"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "s2"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              tmp_path / "twice.onnx")
    with pytest.raises(CompileError, match=r"output y of twice.onnx: dim 1 is \[8, 32\] in the buckets and "
                                           "follows no input dim"):
        compile(tmp_path / "twice.onnx", shapes=[{"x": [1, 4]}, {"x": [1, 16]}], pad_values={"x": 0})


def test_inspect_shows_every_bucket(tmp_path):
    onnx.save(encoder(), tmp_path / "encoder.onnx")
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules", "inspect", str(tmp_path / "encoder.onnx"),
                           "--shapes", SHAPES], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "== shape bucket 1 of 2: input_ids [1, 16], attention_mask [1, 16]" in done.stdout
    assert "== shape bucket 2 of 2" in done.stdout and "f32[1,64,16]" in done.stdout


def _package(workspace, attrs: str) -> None:
    (workspace.root / "p").mkdir(exist_ok=True)
    onnx.save(encoder(), workspace.root / "p" / "encoder.onnx")
    workspace.write("p/BUILD.kiln", f'\nmodel(name = "encoder", graph = "encoder.onnx", {attrs})\n')


@pytest.fixture(scope="module")
def padded(tmp_path_factory, kiln_cache):
    from conftest import Workspace
    workspace = Workspace.empty(tmp_path_factory.mktemp("shapes") / "ws", kiln_cache)
    _package(workspace, f'shapes = {SHAPES}, pad_values = {{"input_ids": 0, "attention_mask": 0}}')
    workspace.kiln("build", "//p:encoder", check=True)
    return workspace


def _feeds(seq: int) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(seq).integers(0, VOCAB, (1, seq)).astype(np.int64)
    return {"input_ids": ids, "attention_mask": np.ones((1, seq), np.int64)}


def _run(workspace, feeds: dict[str, np.ndarray], tmp_path) -> subprocess.CompletedProcess:
    argv = [str(workspace.out("p/encoder")), "--output", f"hidden={tmp_path / 'hidden.npy'}", "--weights",
            str(workspace.out("p/encoder.cpu/weights.safetensors"))]
    for name, value in feeds.items():
        np.save(tmp_path / f"{name}.npy", value)
        argv += ["--input", f"{name}={tmp_path / name}.npy"]
    return subprocess.run(argv, capture_output=True, text=True)


@pytest.mark.e2e
@pytest.mark.parametrize("seq,bucket", [(16, 16), (40, 64), (64, 64)])
def test_a_sequence_runs_in_the_smallest_bucket_padded_and_cut_back(padded, tmp_path, seq, bucket):
    feeds = _feeds(seq)
    done = _run(padded, feeds, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "shape bucket " in done.stderr and (f"[1, {bucket}] (inputs padded)" in done.stderr) == (seq != bucket)
    hidden = np.load(tmp_path / "hidden.npy")
    assert hidden.shape == (1, seq, HIDDEN)
    np.testing.assert_allclose(hidden, run_onnxruntime(encoder(), feeds)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.e2e
def test_a_sequence_longer_than_every_bucket_is_one_line(padded, tmp_path):
    done = _run(padded, _feeds(70), tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert ("input 'input_ids' has shape [1, 70]; the model is compiled for [1, 16], [1, 64] (a smaller batch "
            "is zero-padded, smaller other dims are padded with 0)") in done.stderr.strip().splitlines()[-1]


@pytest.mark.e2e
def test_info_lists_the_shape_buckets(padded):
    done = subprocess.run([str(padded.out("p/encoder")), "--info", "--weights",
                           str(padded.out("p/encoder.cpu/weights.safetensors"))], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "buckets:   input_ids [1, 16], input_ids [1, 64] (inputs run in the smallest bucket" in done.stdout


@pytest.mark.e2e
def test_an_input_without_a_pad_value_must_match_its_bucket(tmp_path_factory, kiln_cache, tmp_path):
    from conftest import Workspace
    workspace = Workspace.empty(tmp_path_factory.mktemp("nopad") / "ws", kiln_cache)
    _package(workspace, f'shapes = {SHAPES}, pad_values = {{"input_ids": 0}}')
    workspace.kiln("build", "//p:encoder", check=True)
    done = _run(workspace, _feeds(40), tmp_path)
    assert done.returncode != 0
    assert ("input 'attention_mask' has shape [1, 40]; the model is compiled for [1, 16], [1, 64] (a smaller "
            "batch is zero-padded, other dims must match: 'attention_mask' has no pad value)") in done.stderr


@pytest.mark.parametrize("attrs,message", [
    ('shapes = []', "shapes: needs at least one entry"),
    ('shapes = [{"input_ids": [1, 16]}, {"input_ids": [1, 16]}]', "shapes: entries 0 and 1 give the same shapes"),
    ('shapes = [{"input_ids": [1, 0]}]', 'shapes[0]["input_ids"] must be a list of positive ints'),
    ('shapes = [{"input_ids": [1, 16]}], batch_sizes = [1, 2]', "give batch_sizes or shapes, not both"),
    ('pad_values = {"input_ids": 0}', "pad_values needs shapes or batch_sizes"),
    ('shapes = [{"input_ids": [1, 16]}], pad_values = {"input_ids": "0"}', 'pad_values["input_ids"] must be a number'),
])
def test_invalid_shapes_are_one_line_at_the_build_file(workspace, attrs, message):
    _package(workspace, attrs)
    done = workspace.kiln("build", "//p:encoder")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = next(line for line in done.stderr.splitlines() if message in line)
    assert "p/BUILD.kiln:2:1" in line


def test_an_unknown_input_in_shapes_fails_its_compile_at_the_build_file(workspace):
    _package(workspace, 'shapes = [{"input_ids": [1, 16], "mask": [1, 16]}]')
    done = workspace.kiln("build", "//p:encoder")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "ERROR: //p:encoder (p/BUILD.kiln:2:1): Compiling //p:encoder" in done.stderr
    assert "error: shapes entry {'input_ids': [1, 16], 'mask': [1, 16]}: input_shapes names mask" in done.stderr


def summed() -> onnx.ModelProto:
    """y = x @ W per row, and s = the sum of x's rows: an output that does not lead with the batch."""
    w = numpy_helper.from_array(np.random.default_rng(3).standard_normal((8, 4)).astype(np.float32), "W")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("ReduceSum", ["x", "axes"], ["s"])]
    graph = helper.make_graph(nodes, "summed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
                               helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 8])], [w, axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.e2e
def test_padded_rows_cut_back_only_the_outputs_that_follow_the_batch(workspace, tmp_path):
    (workspace.root / "p").mkdir(exist_ok=True)
    onnx.save(summed(), workspace.root / "p" / "summed.onnx")
    workspace.write("p/BUILD.kiln", '\nmodel(name = "summed", graph = "summed.onnx", batch_sizes = [1, 4])\n')
    workspace.kiln("build", "//p:summed", check=True)
    x = np.random.default_rng(4).standard_normal((3, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([str(workspace.out("p/summed")), "--input", f"x={tmp_path / 'x.npy'}",
                           "--output", f"y={tmp_path / 'y.npy'}", "--output", f"s={tmp_path / 's.npy'}",
                           "--weights", str(workspace.out("p/summed.cpu/weights.safetensors"))],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    want = run_onnxruntime(summed(), {"x": x})
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), want[1], rtol=1e-5, atol=1e-5)
