"""QuantizeLinear/DequantizeLinear (QDQ) models on the CPU backend and the GPU kernel descriptions,
against onnxruntime: per tensor, per axis, blocked; uint8, int8, int16; ties rounding to even and
saturation; and a float model quantized by onnxruntime's own quantize_static."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from kiln.compiler.errors import CompileError

from gpu_harness import check_gpu
from onnx_models import check, kiln_jit
from test_compiler_ops import rand

BACKENDS = {"cpu": check, "gpu": check_gpu}


def qdq_model(x_shape: tuple, scale: np.ndarray, zp: np.ndarray | None, opset: int = 13, **attrs) -> onnx.ModelProto:
    """x -> QuantizeLinear -> DequantizeLinear -> y with constant scale and zero point."""
    inits = [numpy_helper.from_array(scale, "s")] + ([numpy_helper.from_array(zp, "z")] if zp is not None else [])
    q_in = ["x", "s"] + (["z"] if zp is not None else [])
    nodes = [helper.make_node("QuantizeLinear", q_in, ["q"], name="q", **attrs),
             helper.make_node("DequantizeLinear", ["q"] + q_in[1:], ["y"], name="dq", **attrs)]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def ties(shape: tuple, scale: float) -> np.ndarray:
    """Inputs over and beyond the quantized range, a quarter of them exact halves of a level."""
    x = rand(*shape, lo=-300 * scale, hi=300 * scale)
    flat = x.reshape(-1)
    flat[::4] = (np.arange(flat[::4].size) - flat[::4].size // 2 + 0.5) * scale
    return x


QDQ_CASES = {
    "uint8": ((2, 3, 8), np.float32(0.5), np.uint8(128), 13, {}),
    "int8": ((2, 3, 8), np.float32(0.25), np.int8(-3), 13, {}),
    "scale_not_power_of_two": ((4, 64), np.float32(0.1), np.uint8(128), 13, {}),  # x / 0.1 != x * 10 at ties
    "int8_no_zero_point_is_uint8": ((4, 8), np.float32(0.5), None, 13, {}),
    "per_axis_int8": ((2, 3, 8), np.float32([0.5, 0.25, 1.0]), np.int8([0, 5, -7]), 13, dict(axis=1)),
    "per_axis_last": ((2, 3, 4), np.float32([0.5, 0.25, 1.0, 2.0]), np.uint8([0, 5, 7, 200]), 13, dict(axis=-1)),
    "int16": ((3, 8), np.float32(0.01), np.int16(-1000), 21, {}),
    "blocked": ((2, 6), np.float32([[0.5, 0.25], [1.0, 2.0]]), np.int8([[0, 1], [2, 3]]), 21,
                dict(axis=1, block_size=3)),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", sorted(QDQ_CASES))
def test_qdq(tmp_path, backend, case):
    shape, scale, zp, opset, attrs = QDQ_CASES[case]
    x = ties(shape, float(np.max(scale)))
    BACKENDS[backend](qdq_model(shape, scale, zp, opset, **attrs), {"x": x}, tmp_path)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("zp", [np.uint8(3), np.int8(-3)])
def test_quantized_output_is_an_8bit_tensor(tmp_path, backend, zp):
    m = qdq_model((2, 4), np.float32(0.5), zp)
    m.graph.output.append(helper.make_tensor_value_info("q", onnx.TensorProto.UINT8 if zp.dtype == np.uint8
                                                        else onnx.TensorProto.INT8, None))
    BACKENDS[backend](m, {"x": ties((2, 4), 0.5)}, tmp_path)


def test_16bit_quantized_output_is_refused(tmp_path):
    m = qdq_model((2, 4), np.float32(0.5), np.int16(3), opset=21)
    m.graph.output.append(helper.make_tensor_value_info("q", onnx.TensorProto.INT16, None))
    with pytest.raises(CompileError, match=r"^QuantizeLinear node q: its 16-bit quantized output is a graph output"):
        kiln_jit(m, tmp_path)


def _float_cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "b")
    fc = numpy_helper.from_array(rng.normal(0, 0.2, (6 * 8 * 8, 5)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["y"])]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (1, 3, 8, 8))],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, (1, 5))], [w, b, fc])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


class _Reader:
    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(1)
        self.feeds = iter([{"x": rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.feeds, None)


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantize_static_qdq(tmp_path, per_channel):
    """onnxruntime's QDQ output of a float CNN: weights dequantized at build time, activations through
    QuantizeLinear/DequantizeLinear, compared to onnxruntime running the same graph op by op."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(_float_cnn(), src)
    quantize_static(str(src), str(dst), _Reader(8), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    model = onnx.load(str(dst))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    (tmp_path / "k").mkdir()
    jit, _ = kiln_jit(model, tmp_path / "k")
    x = np.random.default_rng(9).normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(jit.run(x)[0], sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)
