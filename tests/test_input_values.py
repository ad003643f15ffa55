"""Inputs fixed at build time by `input_values` (model() attribute or the compiler's --input-value):
the input becomes a constant, leaves the artifact's inputs, and what depends on it folds (an `If`
on a sample rate, as silero-vad has, a Range length)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kiln.compiler.errors import CompileError
from kiln.compiler.frontend.onnx import load_onnx
from kiln.compiler.inspect import inspect_model
from onnx_models import check


def _lstm_branch(rng: np.random.Generator) -> onnx.GraphProto:
    w = helper.make_tensor("W", TensorProto.FLOAT, (1, 12, 4), rng.uniform(-1, 1, 48).astype(np.float32))
    r = helper.make_tensor("R", TensorProto.FLOAT, (1, 12, 3), rng.uniform(-1, 1, 36).astype(np.float32))
    lstm = helper.make_node("LSTM", ["x", "W", "R"], ["", "h"], hidden_size=3)
    out = helper.make_tensor_value_info("h", TensorProto.FLOAT, None)
    return helper.make_graph([lstm], "then", [], [out], initializer=[w, r])


def _matmul_branch(rng: np.random.Generator) -> onnx.GraphProto:
    m = helper.make_tensor("M", TensorProto.FLOAT, (4, 3), rng.uniform(-1, 1, 12).astype(np.float32))
    nodes = [helper.make_node("MatMul", ["x", "M"], ["p"]),
             helper.make_node("ReduceMean", ["p"], ["q"], axes=[0], keepdims=1)]
    return helper.make_graph(nodes, "else", [], [helper.make_tensor_value_info("q", TensorProto.FLOAT, None)],
                             initializer=[m])


def vad_like(sr_shape: list) -> onnx.ModelProto:
    """silero-vad's structure: an `If` whose condition compares the int64 `sr` input with 16000
    (an LSTM on one side), and a length that follows from `sr` (a Range)."""
    rng = np.random.default_rng(0)
    consts = {"k16": np.array(16000, np.int64), "k4": np.array(4000, np.int64),
              "zero": np.array(0, np.int64), "one": np.array(1, np.int64)}
    nodes = [helper.make_node("Constant", [], [k], value=onnx.numpy_helper.from_array(v, k)) for k, v in consts.items()]
    nodes += [helper.make_node("Equal", ["sr", "k16"], ["is16"]),
              helper.make_node("Squeeze", ["is16"], ["cond"]) if sr_shape else
              helper.make_node("Identity", ["is16"], ["cond"]),
              helper.make_node("If", ["cond"], ["y"], then_branch=_lstm_branch(rng), else_branch=_matmul_branch(rng)),
              helper.make_node("Div", ["sr", "k4"], ["n"]),
              helper.make_node("Squeeze", ["n"], ["n0"]) if sr_shape else
              helper.make_node("Identity", ["n"], ["n0"]),
              helper.make_node("Range", ["zero", "n0", "one"], ["steps"]),
              helper.make_node("Cast", ["steps"], ["t"], to=TensorProto.FLOAT)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 4]),
              helper.make_tensor_value_info("sr", TensorProto.INT64, sr_shape)]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "t")]
    return helper.make_model(helper.make_graph(nodes, "vad", inputs, outputs),
                             opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("sr", [16000, 8000])
@pytest.mark.parametrize("sr_shape", [[], [1], ["n"]])
def test_a_fixed_input_folds_like_onnxruntime_fed_it(tmp_path, sr, sr_shape):
    x = np.random.default_rng(1).standard_normal((5, 1, 4)).astype(np.float32)
    value = np.array(sr, np.int64).reshape([1] * len(sr_shape))
    check(vad_like(sr_shape), {"x": x, "sr": value}, tmp_path, input_values={"sr": (sr,)})


def test_a_fixed_input_leaves_the_graph_inputs(tmp_path):
    onnx.save(vad_like([]), tmp_path / "vad.onnx")
    graph = load_onnx(tmp_path / "vad.onnx", input_values={"sr": (16000,)})
    assert [v.name for v in graph.inputs] == ["x"]
    assert "If" not in {n.op for n in graph.nodes}
    assert graph.fixed_inputs["sr"].dtype == np.int64


def test_without_a_value_the_if_is_refused_in_one_line(tmp_path):
    onnx.save(vad_like([]), tmp_path / "vad.onnx")
    with pytest.raises(CompileError, match="a condition must be known at build time"):
        load_onnx(tmp_path / "vad.onnx")


@pytest.mark.parametrize("values,message", [
    ({"nope": (1,)}, "input_values names nope, which is not an input of vad.onnx (inputs: x, sr)"),
    ({"sr": (16000, 8000)}, "input_values gives sr 2 value(s); vad.onnx declares its shape [1]"),
    ({"sr": (1.5,)}, "input_values gives sr [1.5]; vad.onnx declares it int64, which holds whole numbers only"),
])
def test_wrong_values_are_one_line(tmp_path, values, message):
    onnx.save(vad_like([1]), tmp_path / "vad.onnx")
    with pytest.raises(CompileError) as error:
        load_onnx(tmp_path / "vad.onnx", input_values=values)
    assert str(error.value) == message


def test_inspect_shows_the_fixed_input(tmp_path):
    onnx.save(vad_like([]), tmp_path / "vad.onnx")
    text = inspect_model(tmp_path / "vad.onnx", input_values={"sr": (16000,)})
    assert "fixed input sr = 16000 (int64, folded at build time)" in text
    assert "inputs: x: " in text


def test_model_rule_passes_input_values(workspace):
    (workspace.root / "p").mkdir()
    onnx.save(vad_like([1]), workspace.root / "p" / "vad.onnx")
    workspace.write("p/BUILD.kiln", 'model(name = "vad", graph = "vad.onnx", input_values = {"sr": [16000]})\n')
    workspace.kiln("build", "//p:vad", check=True)
    manifest = json.loads(workspace.out("p/vad.cpu/manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["x"]


def test_a_value_that_does_not_fit_names_the_build_file_target_and_input(workspace):
    (workspace.root / "p").mkdir()
    onnx.save(vad_like([1]), workspace.root / "p" / "vad.onnx")
    workspace.write("p/BUILD.kiln", '\nmodel(name = "vad", graph = "vad.onnx", input_values = {"sr": [1, 2]})\n')
    done = workspace.kiln("build", "//p:vad")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "ERROR: //p:vad (p/BUILD.kiln:2:1): Compiling //p:vad" in done.stderr
    assert "input_values gives sr 2 value(s); vad.onnx declares its shape [1]" in done.stderr


def test_model_rule_rejects_values_that_are_not_numbers(workspace):
    workspace.write("p/BUILD.kiln", '\nmodel(name = "vad", graph = "vad.onnx", input_values = {"sr": ["16k"]})\n')
    done = workspace.kiln("build", "//p:vad")
    assert done.returncode == 1
    assert 'p/BUILD.kiln:2:1: model(): input_values["sr"] must be a list of numbers, got [\'16k\']' in done.stderr


@pytest.mark.e2e
def test_the_launcher_runs_without_the_fixed_input(workspace, tmp_path):
    from onnx_models import run_onnxruntime
    (workspace.root / "p").mkdir()
    model = vad_like([])
    onnx.save(model, workspace.root / "p" / "vad.onnx")
    workspace.write("p/BUILD.kiln", 'model(name = "vad", graph = "vad.onnx", input_values = {"sr": [16000]})\n')
    x = np.random.default_rng(1).standard_normal((5, 1, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = workspace.kiln("run", "//p:vad", "--", "--input", str(tmp_path / "x.npy"), "--output",
                          f"y={tmp_path / 'y.npy'}", check=True)
    assert done.returncode == 0
    ref = run_onnxruntime(model, {"x": x, "sr": np.array(16000, np.int64)})
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref[0], rtol=1e-4, atol=1e-5)
