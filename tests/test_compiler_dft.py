"""DFT against onnxruntime (one-node models) and against numpy's float64 FFT for long lengths.

NaN is checked against onnxruntime; infinities are not: its butterflies turn an infinity into NaN
where the transform's own sum (which kiln's MatMul computes) is infinite."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.compiler.ir import ops  # noqa: F401  (registration)
from kiln.compiler.ir.graph import Node, Value
from kiln.compiler.ir.ops_dft import dft_matrix
from onnx_models import assert_close, check, kiln_jit, run_onnxruntime, single_op

RNG = np.random.default_rng(1717)
I64 = np.int64


def _signal(*shape: int) -> np.ndarray:
    return RNG.uniform(-2.0, 2.0, shape).astype(np.float32)


DFT17_CASES = [
    # (input shape, dft_length or None, attrs)
    ((2, 16, 1), None, dict(axis=1)),
    ((2, 12, 2), None, dict(axis=1)),
    ((3, 8, 5, 2), None, dict(axis=2)),
    ((2, 16, 1), None, dict(axis=1, onesided=1)),
    ((2, 15, 2), None, dict(axis=1, inverse=1)),
    ((2, 10, 1), 16, dict(axis=1)),  # zero-padded
    ((2, 20, 2), 12, dict(axis=1)),  # truncated
    ((2, 9, 1), 7, dict(axis=1, onesided=1)),
]


@pytest.mark.parametrize("shape,length,attrs", DFT17_CASES)
def test_dft17(tmp_path, shape, length, attrs):
    inputs = [("x", _signal(*shape), False)]
    if length is not None:
        inputs.append(("n", np.array(length, I64), True))
    check(single_op("DFT", inputs, 1, 17, **attrs), {"x": inputs[0][1]}, tmp_path)


@pytest.mark.parametrize("axis", [1, -2, 0])
def test_dft20_axis_input(tmp_path, axis):
    x = _signal(6, 10, 2)
    inputs = [("x", x, False), ("n", np.array(10, I64), True), ("axis", np.array(axis, I64), True)]
    check(single_op("DFT", inputs, 1, 20), {"x": x}, tmp_path)


@pytest.mark.parametrize("length,attrs", [(4096, {}), (3000, {"inverse": 1}), (2048, {"onesided": 1})])
def test_dft_matrix_long_lengths(length, attrs):
    """The float32 matrix times a float64 signal stays within 1e-4 of the float64 FFT."""
    x = RNG.uniform(-1.0, 1.0, (length, 2))
    node = Node("DFT", "n", [Value("x", const=x.astype(np.float32))], [Value("y")], dict(attrs, axis=0))
    got = (x.reshape(1, -1) @ dft_matrix(node).astype(np.float64)).reshape(-1, 2)
    fft = np.fft.ifft if attrs.get("inverse") else np.fft.fft
    want = fft(x[:, 0] + 1j * x[:, 1])[:got.shape[0]]
    scale = np.abs(want).max()
    assert np.abs(got[:, 0] + 1j * got[:, 1] - want).max() <= 1e-4 * scale


def test_dft_nan_spreads_over_its_own_transform_only(tmp_path):
    x = _signal(3, 8, 2)
    x[1, 5, 0] = np.nan
    model = single_op("DFT", [("x", x, False)], 1, 17, axis=1)
    jit, _ = kiln_jit(model, tmp_path)
    got, want = jit.run(x)[0], run_onnxruntime(model, {"x": x})[0]
    assert np.isnan(got[1]).all() and not np.isnan(got[[0, 2]]).any()
    assert_close(got, want)


STFT_CASES = [
    # (signal shape, frame_step, window length or None, frame_length or None, onesided)
    ((2, 64, 1), 8, 16, None, 1),
    ((1, 50, 1), 5, None, 12, 1),
    ((2, 40, 2), 4, 10, 10, 0),
]


@pytest.mark.parametrize("shape,step,window,length,onesided", STFT_CASES)
def test_stft(tmp_path, shape, step, window, length, onesided):
    x = _signal(*shape)
    inputs = [("x", x, False), ("step", np.array(step, I64), True)]
    if window is not None:
        inputs.append(("window", np.hanning(window).astype(np.float32), True))
    if length is not None:
        inputs += [("", None, None)] * (window is None) + [("length", np.array(length, I64), True)]
    check(_model("STFT", inputs, onesided=onesided), {"x": x}, tmp_path)


def _model(op: str, inputs: list, **attrs):
    """A one-node opset-17 model; ("", None, None) is an absent optional input."""
    model = single_op(op, [i for i in inputs if i[0]], 1, 17, **attrs)
    model.graph.node[0].input[:] = [name for name, _, _ in inputs]
    return model


MEL_INPUTS = [("bins", np.array(16, I64), True), ("dft", np.array(128, I64), True),
              ("rate", np.array(16000, I64), True), ("low", np.float32(20), True), ("high", np.float32(8000), True)]


def test_mel_weight_matrix_folds(tmp_path):
    check(single_op("MelWeightMatrix", MEL_INPUTS, 1, 17), {}, tmp_path)


def test_log_mel_spectrogram(tmp_path):
    x = _signal(1, 800, 1)
    check(log_mel_model(x.shape), {"x": x}, tmp_path)


def log_mel_model(shape: tuple[int, ...]):
    """STFT -> power -> MatMul with MelWeightMatrix -> Log, as audio front ends export."""
    nodes = [helper.make_node("STFT", ["x", "step", "window"], ["spec"]),
             helper.make_node("ReduceSumSquare", ["spec", "last"], ["power"], keepdims=0),
             helper.make_node("MelWeightMatrix", [n for n, _, _ in MEL_INPUTS], ["mel"]),
             helper.make_node("MatMul", ["power", "mel"], ["mel_power"]),
             helper.make_node("Add", ["mel_power", "floor"], ["floored"]),
             helper.make_node("Log", ["floored"], ["y"])]
    consts = [("step", np.array(160, I64)), ("window", np.hanning(128).astype(np.float32)),
              ("last", np.array([-1], I64)), ("floor", np.float32(1e-6))] + [(n, a) for n, a, _ in MEL_INPUTS]
    graph = helper.make_graph(nodes, "log_mel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_empty_tensor_value_info("y")],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in consts])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model
