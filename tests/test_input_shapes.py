"""Symbolic input dims beyond the batch: fixed by `input_shapes` (model() attribute or the compiler's
--input-shape), or taken from another input that names the same dim."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kiln.compiler.errors import CompileError
from kiln.compiler.frontend.onnx import load_onnx
from onnx_models import check


def encoder_like() -> onnx.ModelProto:
    """Two inputs sharing the symbolic `seq` dim, as transformer exporters write them."""
    nodes = [helper.make_node("Add", ["tokens", "positions"], ["s"]),
             helper.make_node("Softmax", ["s"], ["y"], axis=-1)]
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "seq", 16]),
              helper.make_tensor_value_info("positions", TensorProto.FLOAT, [1, "seq", 16])]
    graph = helper.make_graph(nodes, "enc", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_one_given_shape_fixes_the_dim_it_shares(tmp_path):
    rng = np.random.default_rng(0)
    feeds = {"tokens": rng.standard_normal((2, 12, 16)).astype(np.float32),
             "positions": rng.standard_normal((1, 12, 16)).astype(np.float32)}
    check(encoder_like(), feeds, tmp_path, input_shapes={"tokens": (2, 12, 16)})


def test_without_shapes_the_error_says_how_to_give_them(tmp_path):
    onnx.save(encoder_like(), tmp_path / "enc.onnx")
    with pytest.raises(CompileError, match=r'input tokens has symbolic dimension seq \(enc.onnx\); fix it with '
                                           r'model\(input_shapes = \{"tokens": \[...\]\}\)'):
        load_onnx(tmp_path / "enc.onnx")


@pytest.mark.parametrize("shapes,message", [
    ({"nope": (1, 2, 16)}, "input_shapes names nope, which is not an input of enc.onnx"),
    ({"tokens": (1, 12)}, "declares rank 3"),
    ({"tokens": (1, 12, 8)}, "enc.onnx fixes ['batch', 'seq', 16]"),
    ({"tokens": (1, 12, 16), "positions": (1, 10, 16)}, "the symbolic dim seq two sizes: 12 and 10"),
])
def test_wrong_shapes_are_one_line(tmp_path, shapes, message):
    onnx.save(encoder_like(), tmp_path / "enc.onnx")
    with pytest.raises(CompileError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_onnx(tmp_path / "enc.onnx", input_shapes=shapes)


def test_model_rule_passes_input_shapes(workspace):
    (workspace.root / "p").mkdir()
    onnx.save(encoder_like(), workspace.root / "p" / "enc.onnx")
    workspace.write("p/BUILD.kiln", 'model(name = "enc", graph = "enc.onnx", input_shapes = {"tokens": [1, 8, 16]})\n')
    workspace.kiln("build", "//p:enc", check=True)
    manifest = json.loads(workspace.out("p/enc.cpu/manifest.json").read_text())
    assert [i["shape"] for i in manifest["inputs"]] == [[1, 8, 16], [1, 8, 16]]


def test_compiler_cli_rejects_a_malformed_shape(tmp_path):
    import subprocess
    import sys
    onnx.save(encoder_like(), tmp_path / "enc.onnx")
    done = subprocess.run([sys.executable, "-m", "kiln.compiler", "compile", str(tmp_path / "enc.onnx"), "-o",
                           str(tmp_path / "out"), "--input-shape", "tokens=1,x"], capture_output=True, text=True)
    assert done.returncode == 2 and "'tokens=1,x': expected NAME=D0,D1,..." in done.stderr


def test_model_rule_rejects_a_bad_shape_with_its_location(workspace):
    workspace.write("p/BUILD.kiln", '\nmodel(name = "enc", graph = "enc.onnx", input_shapes = {"tokens": [1, 0]})\n')
    done = workspace.kiln("build", "//p:enc")
    assert done.returncode == 1
    assert 'p/BUILD.kiln:2:1: model(): input_shapes["tokens"] must be a list of positive ints, got [1, 0]' in done.stderr


def test_question_mark_dims_are_each_their_own(tmp_path):
    """Paddle writes "?" for every unknown dim: a 48x192 image must not be refused as "? has two sizes"."""
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["?", 3, "?", "?"])
    graph = helper.make_graph(nodes, "paddle", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 48, 192)).astype(np.float32)}
    check(model, feeds, tmp_path, input_shapes={"x": (1, 3, 48, 192)})
