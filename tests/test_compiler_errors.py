"""User mistakes surface as one-line CompileErrors (and exit code 1 from the CLI)."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from safetensors.numpy import save_file

from kiln.compiler import CompileError
from kiln.compiler import driver

import onnx_models as M


def _save(model: onnx.ModelProto, path) -> None:
    onnx.save(model, path)


def _compile_error(model, weights=None) -> str:
    with pytest.raises(CompileError) as e:
        driver.compile(model, weights=weights)
    message = str(e.value)
    assert "\n" not in message
    return message


def _one_node(op: str, name: str = "bad_node") -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], name=name)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [2, 3])],
                              [helper.make_tensor_value_info("y", 1, [2, 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_unsupported_operator_named(tmp_path):
    _save(_one_node("MaxRoiPool"), tmp_path / "model.onnx")
    assert _compile_error(tmp_path / "model.onnx") == ("unsupported operator MaxRoiPool (opset 17) at node bad_node "
                                                       "(model.onnx); nearest supported: MaxPool, MaxUnpool")


def test_unsupported_operator_unnamed_uses_index(tmp_path):
    model = M.single_op("Relu", [("x", np.zeros((2, 3), np.float32), False)])
    model.graph.node.append(helper.make_node("NonMaxSuppression", ["y0", "y0"], ["sel"]))
    _save(model, tmp_path / "net.onnx")
    assert _compile_error(tmp_path / "net.onnx") == \
        "unsupported operator NonMaxSuppression (opset 17) at node 1 (net.onnx)"


def test_unsupported_domain(tmp_path):
    model = _one_node("Relu", "ms")
    model.graph.node[0].domain = "com.microsoft"
    _save(model, tmp_path / "model.onnx")
    message = _compile_error(tmp_path / "model.onnx")
    assert message.startswith("unsupported operator com.microsoft.Relu at node ms (model.onnx); kiln maps the "
                              "ai.onnx domain and these com.microsoft ops: Attention, BiasAdd, ")
    assert "\n" not in message and "SkipLayerNormalization" in message


def test_malformed_onnx(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07this is not a protobuf\xff\xff\xff")
    assert "malformed ONNX file junk.onnx" in _compile_error(tmp_path / "junk.onnx")


def test_truncated_onnx(tmp_path):
    data = M.mlp().SerializeToString()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    assert "cut.onnx" in _compile_error(tmp_path / "cut.onnx")


def test_missing_model_file(tmp_path):
    assert "no such file" in _compile_error(tmp_path / "absent.onnx")


def test_unsupported_opset(tmp_path):
    model = _one_node("Relu")
    model.opset_import[0].version = 29
    _save(model, tmp_path / "model.onnx")
    assert "opset 29; supported: 1-28" in _compile_error(tmp_path / "model.onnx")


def test_model_without_an_ai_onnx_opset(tmp_path):
    model = _one_node("Relu")
    model.opset_import[0].domain = "ai.onnx.ml"
    model.opset_import[0].version = 3
    _save(model, tmp_path / "model.onnx")
    assert _compile_error(tmp_path / "model.onnx") == ("model.onnx imports no ai.onnx opset (imports: ai.onnx.ml); "
                                                       "operators of other domains are not supported")


def _external_weights(tmp_path, tensors: dict[str, np.ndarray]):
    """mnist CNN with its initializers stripped to declarations, weights in safetensors."""
    model = M.mnist_cnn()
    for init in model.graph.initializer:
        init.ClearField("raw_data")
        init.ClearField("float_data")
        init.ClearField("int64_data")
    _save(model, tmp_path / "model.onnx")
    save_file(tensors, tmp_path / "w.safetensors")
    return tmp_path / "model.onnx", tmp_path / "w.safetensors"


def _weights() -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in M.mnist_cnn().graph.initializer}


def test_external_weights_ok(tmp_path):
    model, weights = _external_weights(tmp_path, _weights())
    compiled = driver.compile(model, weights=weights)
    assert compiled.manifest["weights"]["tensors"]


def test_weight_shape_mismatch(tmp_path):
    w = _weights()
    name = next(n for n, a in w.items() if a.ndim == 4)
    w[name] = np.zeros((1, 2, 3, 4), np.float32)
    msg = _compile_error(*_external_weights(tmp_path, w))
    assert name in msg and "shape" in msg


def test_weight_dtype_mismatch(tmp_path):
    w = _weights()
    name = next(n for n, a in w.items() if a.dtype == np.float32)
    w[name] = w[name].astype(np.float64)
    msg = _compile_error(*_external_weights(tmp_path, w))
    assert name in msg and "dtype" in msg


def test_weight_missing(tmp_path):
    w = _weights()
    name = sorted(w)[0]
    del w[name]
    msg = _compile_error(*_external_weights(tmp_path, w))
    assert name in msg and "missing" in msg


def test_weight_name_mismatch(tmp_path):
    w = _weights()
    w["not_in_model"] = np.zeros(3, np.float32)
    msg = _compile_error(*_external_weights(tmp_path, w))
    assert "not_in_model" in msg


def test_truncated_safetensors(tmp_path):
    model, weights = _external_weights(tmp_path, _weights())
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])
    assert "invalid safetensors file w.safetensors" in _compile_error(model, weights)


def test_garbage_safetensors(tmp_path):
    model, weights = _external_weights(tmp_path, _weights())
    weights.write_bytes(b"\xff" * 16)
    assert "invalid safetensors file" in _compile_error(model, weights)


def test_bad_shape_semantics(tmp_path):
    model = M.single_op("MatMul", [("a", np.zeros((2, 3), np.float32), False),
                                   ("b", np.zeros((4, 5), np.float32), True)])
    _save(model, tmp_path / "model.onnx")
    assert "inner dimensions differ" in _compile_error(tmp_path / "model.onnx")


F32, I64 = np.zeros((2, 3), np.float32), np.array([0, 3, 0, 3], np.int64)


@pytest.mark.parametrize("op,inputs,attrs,message", [
    ("Pad", [("x", F32, False), ("p", I64, True)], dict(mode="reflect"),
     "Pad node the_node: reflect pads 3, 3 of axis 1 must be less than its size 3"),
    ("Pad", [("x", F32, False), ("p", I64, True)], dict(mode="mirror"),
     "Pad node the_node: mode 'mirror' is not one of constant, reflect, edge, wrap"),
    ("Pad", [("x", F32, False), ("p", I64[:3], True)], {}, "Pad node the_node: 3 pads for 2 axes"),
    ("Pad", [("x", F32, False), ("p", I64, False)], {}, "Pad node the_node: pads must be known at build time"),
    ("And", [("a", F32, False), ("b", F32, False)], {}, "And node the_node: expects bool inputs, got f32"),
    ("Less", [("a", F32, False), ("b", I64, False)], {}, "Less node the_node: input dtypes differ (f32 and i64)"),
    ("Where", [("c", F32, False), ("a", F32, False), ("b", F32, False)], {},
     "Where node the_node: expects a bool condition, got f32"),
    ("ReduceMax", [("x", F32, False), ("a", np.array([2], np.int64), True)], {},
     "ReduceMax node the_node: axis 2 out of range for rank 2"),
    ("ArgMax", [("x", F32, False)], dict(axis=-3), "ArgMax node the_node: axis -3 out of range for rank 2"),
    ("LRN", [("x", F32, False)], dict(size=0), "LRN node the_node: needs a positive size"),
])
def test_operator_misuse_is_one_line(tmp_path, op, inputs, attrs, message):
    _save(M.single_op(op, inputs, opset=18, **attrs), tmp_path / "model.onnx")
    assert message in _compile_error(tmp_path / "model.onnx")


@pytest.mark.parametrize("platform", ["cpu", "cuda"])
def test_reduction_of_integers_at_run_time(tmp_path, platform):
    _save(M.single_op("ReduceMax", [("x", np.zeros((2, 3), np.int64), False)], keepdims=0), tmp_path / "m.onnx")
    with pytest.raises(CompileError, match="^ReduceMax node the_node: only f32 is supported$"):
        driver.compile(tmp_path / "m.onnx", platform)


def test_attention_bad_window_is_one_line(tmp_path):
    qkv = [(n, np.zeros((1, 2, 3, 4), np.float32), False) for n in "qkv"]
    _save(M.single_op("Attention", qkv, opset=25, left_window_size=-2), tmp_path / "model.onnx")
    assert _compile_error(tmp_path / "model.onnx") == (
        "Attention node the_node: left_window_size must be -1 or nonnegative, got -2")


def test_rotary_embedding_3d_without_num_heads_is_one_line(tmp_path):
    inputs = [("x", np.zeros((1, 3, 8), np.float32), False), ("c", np.zeros((1, 3, 4), np.float32), False),
              ("s", np.zeros((1, 3, 4), np.float32), False)]
    _save(M.single_op("RotaryEmbedding", inputs, opset=23), tmp_path / "model.onnx")
    assert _compile_error(tmp_path / "model.onnx") == (
        "RotaryEmbedding node the_node: a 3-D input needs num_heads dividing its hidden size 8")


def test_integer_floor_is_one_line(tmp_path):
    _save(M.single_op("Floor", [("x", np.ones(3, np.int64), False)]), tmp_path / "model.onnx")
    assert _compile_error(tmp_path / "model.onnx") == "Floor node the_node: expects f32 input, got i64"


def test_range_of_runtime_values_names_the_input(tmp_path):
    model = M.single_op("Range", [("s", np.array(0, np.int64), False), ("l", np.array(5, np.int64), True),
                                  ("d", np.array(1, np.int64), True)])
    _save(model, tmp_path / "model.onnx")
    assert _compile_error(tmp_path / "model.onnx").startswith(
        "Range node the_node: start must be known at build time (shapes are static)")


def test_symbolic_inner_dimension(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, ["N", "T"])],
                              [helper.make_tensor_value_info("y", 1, None)])
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    assert "symbolic dimension T" in _compile_error(tmp_path / "m.onnx")


def test_cli_prints_one_line_and_exits_1(tmp_path):
    _save(_one_node("MaxRoiPool"), tmp_path / "model.onnx")
    r = subprocess.run([sys.executable, "-m", "kiln.compiler", "compile", "--platform", "cpu",
                        "--host", "linux-amd64", str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr == ("error: unsupported operator MaxRoiPool (opset 17) at node bad_node (model.onnx); "
                        "nearest supported: MaxPool, MaxUnpool\n")
    assert not (tmp_path / "out").exists()


def _raw_safetensors(path, tensors: dict[str, tuple[str, list[int], bytes]]) -> None:
    """A safetensors file written by hand (safetensors' numpy API has no bfloat16)."""
    header, body = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def _bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even f32 -> bf16 bit patterns."""
    bits = a.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_half_precision_weights_are_widened_at_build_time(tmp_path, dtype):
    weights = _weights()
    model_path, path = _external_weights(tmp_path, weights)
    floats = {n: a for n, a in weights.items() if a.dtype == np.float32}
    halves = {n: _bf16_bits(a) if dtype == "BF16" else a.astype(np.float16) for n, a in floats.items()}
    stored = {n: (dtype, list(a.shape), a.tobytes()) for n, a in halves.items()}
    stored.update({n: ("I64", list(a.shape), a.tobytes()) for n, a in weights.items() if n not in floats})
    _raw_safetensors(path, stored)
    rounded = {n: (h.astype(np.uint32) << 16).view(np.float32) if dtype == "BF16" else h.astype(np.float32)
               for n, h in halves.items()}
    rounded.update({n: a for n, a in weights.items() if n not in floats})
    reference = M.mnist_cnn()
    for init in reference.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(rounded[init.name], init.name))
    x = np.random.default_rng(3).standard_normal((1, 1, 28, 28)).astype(np.float32)
    want = M.run_onnxruntime(reference, {"input": x})[0]
    from kiln.compiler.jit import JitModel
    got = JitModel(driver.compile(model_path, weights=path)).run(x)[0]
    M.assert_close(got, want)


def _header(text: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(text)) + text + body


@pytest.mark.parametrize("header,message", [
    (b"\xff" * 8, "the header claims"),
    (_header(b"{oops"), "the header is not JSON"),
    (_header(b"[]"), "the header is not a JSON object"),
    (_header(b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 99]}}'), "data_offsets [0, 99]"),
    (_header(b'{"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}', bytes(8)), "dtype C64"),
])
def test_malformed_safetensors_headers_are_one_line(tmp_path, header, message):
    model, weights = _external_weights(tmp_path, _weights())
    weights.write_bytes(header)
    assert message in _compile_error(model, weights)


def _zoo_like(opset: int = 9) -> onnx.ModelProto:
    """A model with several ops kiln does not map, as old zoo models have."""
    nodes = [helper.make_node("MaxRoiPool", ["x"], ["a"], name="norm1"),
             helper.make_node("Relu", ["a"], ["b"], name="relu1"),
             helper.make_node("RandomNormalLike", ["b"], ["c"], name="pool"),
             helper.make_node("MaxRoiPool", ["c"], ["y"], name="norm2")]
    graph = helper.make_graph(nodes, "zoo", [helper.make_tensor_value_info("x", 1, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info("y", 1, [1, 1, 5, 5])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=4)


def test_inspect_check_lists_every_problem_at_once(tmp_path):
    _save(_zoo_like(), tmp_path / "zoo.onnx")
    r = subprocess.run([sys.executable, "-m", "kiln.compiler", "inspect", "--check", str(tmp_path / "zoo.onnx")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr == ""
    assert r.stdout.splitlines() == [
        "zoo.onnx: 3 problems for cpu",
        "  unsupported operator MaxRoiPool (opset 9) at node norm1 (zoo.onnx); nearest supported: MaxPool, MaxUnpool",
        "  unsupported operator RandomNormalLike (opset 9) at node pool (zoo.onnx)",
        "  unsupported operator MaxRoiPool (opset 9) at node norm2 (zoo.onnx); nearest supported: MaxPool, MaxUnpool",
    ]


def test_inspect_check_of_a_model_kiln_compiles(tmp_path):
    _save(M.mnist_cnn(), tmp_path / "cnn.onnx")
    for platform in ("cpu", "cuda", "tpu"):
        r = subprocess.run([sys.executable, "-m", "kiln.compiler", "inspect", "--check", "--platform", platform,
                            str(tmp_path / "cnn.onnx")], capture_output=True, text=True)
        assert (r.returncode, r.stdout) == (0, f"cnn.onnx: kiln compiles every node for {platform}\n"), r.stderr


def test_kiln_inspect_check_from_the_cli(tmp_path):
    _save(_zoo_like(), tmp_path / "zoo.onnx")
    r = subprocess.run([sys.executable, "-m", "kiln.build_rules", "inspect", "--check", str(tmp_path / "zoo.onnx")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and r.stdout.startswith("zoo.onnx: 3 problems for cpu\n"), r.stderr


def test_external_data_outside_the_model_directory(tmp_path):
    from onnx.external_data_helper import set_external_data
    weight = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    set_external_data(weight, location="../secret.bin", offset=0, length=24)
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, [2, 3])],
                              [helper.make_tensor_value_info("y", 1, [2, 3])], [weight])
    (tmp_path / "m").mkdir()
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m" / "model.onnx")
    (tmp_path / "secret.bin").write_bytes(bytes(24))
    assert "'../secret.bin' points outside the directory" in _compile_error(tmp_path / "m" / "model.onnx")
