"""model(shapes = [...], pad_values = {...}): one shape bucket per entry of input shapes in one launcher;
a run takes the smallest bucket its inputs fit, padding a sequence only for inputs given a pad value,
and cuts the outputs back along the dims that follow the padded ones."""
from __future__ import annotations

import json
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
    ([{"input_ids": [1, 16], "mask": [1, 16]}], {}, "shapes entry 0 ({'input_ids': [1, 16], 'mask': [1, 16]}): "
     "input_shapes names mask, which is not an input"),
    ([{"input_ids": [16], "attention_mask": [1, 16]}], {}, "shapes entry 0"),
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
