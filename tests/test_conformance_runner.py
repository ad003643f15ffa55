"""The conformance runner's own logic (bench/onnx_conformance.py) on hand-made cases: how outputs are
compared, which rule excludes a case, inputs folded when kiln needs them at build time, and a worker
that dies failing only its case."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import onnx_conformance as oc  # noqa: E402
from conformance_cases import Case  # noqa: E402
from conformance_report import parse_cases, render  # noqa: E402


def make_case(folder: Path, model: onnx.ModelProto, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> Case:
    data = folder / "test_data_set_0"
    data.mkdir(parents=True)
    onnx.save(model, folder / "model.onnx")
    for prefix, arrays in (("input", inputs), ("output", outputs)):
        for i, a in enumerate(arrays):
            (data / f"{prefix}_{i}.pb").write_bytes(numpy_helper.from_array(a).SerializeToString())
    return Case(folder.name, model.graph.node[0].op_type, 1e-3, 1e-7, folder)


def one_node(op: str, inputs: dict[str, np.ndarray], out_type: int = TensorProto.FLOAT, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, list(inputs), ["y"], **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                                                         a.shape) for n, a in inputs.items()],
                              [helper.make_tensor_value_info("y", out_type, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_mismatch_follows_onnx_backend_runner():
    case = Case("c", "Op", 1e-3, 1e-7, Path("."))
    want = np.array([1.0, np.nan, 3.0], np.float32)
    assert oc.mismatch([want * (1 + 5e-4)], [want], case) is None
    assert "Mismatched elements: 1 / 3" in oc.mismatch([want + np.float32([0, 0, 0.1])], [want], case)
    assert oc.mismatch([np.zeros(3, np.float32)], [want], case) == "output 0: nan location mismatch"
    assert oc.mismatch([np.zeros(3, np.int64)], [want], case) == "output 0: int64[3], expected float32[3]"
    assert oc.mismatch([want, want], [want], case) == "2 outputs, expected 1"


def test_exclusion_rules(tmp_path):
    case = Case("test_x", "Op", 1e-3, 1e-7, tmp_path)
    assert oc.exclusion(case, one_node("Relu", {"x": np.zeros(2, np.float32)})) is None
    assert oc.exclusion(case, one_node("Relu", {"x": np.zeros(2, np.float16)})) == "dtype float16"
    assert oc.exclusion(case, one_node("Identity", {"x": np.array(["a"])}, TensorProto.STRING)) == "string"
    assert oc.exclusion(Case("test_training_dropout", "Dropout", 1e-3, 1e-7, tmp_path),
                        one_node("Relu", {"x": np.zeros(2, np.float32)})) == "training"
    assert oc.exclusion(case, one_node("SequenceEmpty", {})) == "sequence"


def test_inputs_needed_at_build_time_are_folded(tmp_path):
    x, shape = np.arange(6, dtype=np.float32), np.array([2, 3], np.int64)
    case = make_case(tmp_path / "test_reshape", one_node("Reshape", {"x": x, "shape": shape}), [x, shape],
                     [x.reshape(2, 3)])
    result = oc.run_case(case, "cpu")
    assert (result.status, result.reason) == ("pass", "inputs shape as initializers")


def test_wrong_result_and_unsupported_op(tmp_path):
    x = np.float32([-1, 2])
    wrong = oc.run_case(make_case(tmp_path / "test_relu", one_node("Relu", {"x": x}), [x], [x]), "cpu")
    assert (wrong.status, wrong.reason) == ("fail", "output 0: Mismatched elements: 1 / 2 (50%)")
    # an op no opset defines, so that it stays unsupported as kiln maps more of onnx's
    missing = oc.run_case(make_case(tmp_path / "test_made_up", one_node("MadeUpOp", {"x": x}), [x], [x]), "cpu")
    assert missing.status == "unsupported" and missing.reason.startswith("unsupported operator MadeUpOp")


def test_a_dead_worker_fails_its_case_and_is_replaced(tmp_path):
    x = np.float32([-1, 2])
    case = make_case(tmp_path / "test_relu", one_node("Relu", {"x": x}), [x], [np.maximum(x, 0)])
    pool = oc.Pool("cpu", 1, 60)
    try:
        worker = pool.workers[0]
        worker.process.kill()
        worker.process.join()
        worker.case, worker.deadline = case, time.monotonic() + 60
        assert pool._collect(0, worker).reason == "worker process died (exit code -9)"
        assert pool.workers[0] is not worker
        assert [r.status for r in pool.run([case], lambda done, result: None)] == ["pass"]
    finally:
        pool.close()


def test_report_round_trips_through_its_parser(tmp_path):
    cases = [Case(f"test_{n}", "Op", 1e-3, 1e-7, tmp_path) for n in "abcd"]
    results = [oc.Result(cases[0], "pass"), oc.Result(cases[1], "fail", "a | b"),
               oc.Result(cases[2], "unsupported", "unsupported operator X at node 0"),
               oc.Result(cases[3], "excluded", "string")]
    text = render(results, "cpu", "python bench/onnx_conformance.py", REPO)
    assert parse_cases(text) == {"test_a": ("pass", ""), "test_b": ("fail", "a \\| b"),
                                 "test_c": ("unsupported", "unsupported operator X at node 0"),
                                 "test_d": ("excluded", "string")}
    assert "**33.3%** of the 3 non-excluded cases pass." in text
    assert "| X | 1 |" in text
