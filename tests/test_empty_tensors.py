"""Tensors with a 0-size dimension: their content is known at build time (nothing), so what reads them
folds: a reduction over an empty set is its identity (ONNX: sum 0, product 1, max -inf, ...), and an
empty result is an empty constant. The launcher takes and writes 0-element .npy files."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnx_models import assert_close, kiln_run, run_onnxruntime

REDUCTIONS = ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
              "ReduceLogSum", "ReduceLogSumExp"]


def empty_reduction(op: str) -> onnx.ModelProto:
    """x [2, 0, 4] reduced over its empty axis plus y [2, 4]; and Relu(x), an empty output."""
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [helper.make_node(op, ["x", "axes"], ["r"], keepdims=0), helper.make_node("Add", ["r", "y"], ["sum"]),
             helper.make_node("Relu", ["x"], ["relu"])]
    graph = helper.make_graph(
        nodes, "empty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 0, 4]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [2, 4]),
         helper.make_tensor_value_info("relu", TensorProto.FLOAT, [2, 0, 4])], [axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def feeds() -> dict[str, np.ndarray]:
    return {"x": np.zeros((2, 0, 4), np.float32),
            "y": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)}


@pytest.mark.parametrize("op", REDUCTIONS)
def test_a_reduction_over_an_empty_set_is_its_identity(op, tmp_path):
    model = empty_reduction(op)
    got = kiln_run(model, feeds(), tmp_path)
    ref = run_onnxruntime(model, feeds())
    for g, r in zip(got, ref):
        assert_close(g, r)


def test_reshape_split_and_trilu_of_empty_tensors(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["reshaped"], allowzero=1),
             helper.make_node("Split", ["x", "split"], ["a", "b"], axis=1),
             helper.make_node("Trilu", ["a"], ["tri"])]
    inits = [helper.make_tensor("shape", TensorProto.INT64, [3], [4, 0, 2]),
             helper.make_tensor("split", TensorProto.INT64, [2], [0, 0])]
    graph = helper.make_graph(
        nodes, "empty", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 0, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("reshaped", "b", "tri")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    x = np.zeros((2, 0, 4), np.float32)
    got = kiln_run(model, {"x": x}, tmp_path)
    ref = run_onnxruntime(model, {"x": x})
    assert [g.shape for g in got] == [r.shape for r in ref] == [(4, 0, 2), (2, 0, 4), (2, 0, 4)]


@pytest.mark.e2e
def test_the_launcher_reads_and_writes_empty_npy_files(workspace, tmp_path):
    model = empty_reduction("ReduceMax")
    (workspace.root / "p").mkdir()
    onnx.save(model, workspace.root / "p" / "m.onnx")
    workspace.write("p/BUILD.kiln", 'model(name = "m", graph = "m.onnx")\n')
    for name, array in feeds().items():
        np.save(tmp_path / f"{name}.npy", array)
    workspace.kiln("run", "//p:m", "--", "--input", f"x={tmp_path / 'x.npy'}", "--input", f"y={tmp_path / 'y.npy'}",
                   "--output", f"sum={tmp_path / 'sum.npy'}", "--output", f"relu={tmp_path / 'relu.npy'}",
                   check=True)
    ref = run_onnxruntime(model, feeds())
    assert_close(np.load(tmp_path / "sum.npy"), ref[0])
    relu = np.load(tmp_path / "relu.npy")
    assert relu.shape == (2, 0, 4) and relu.dtype == np.float32
