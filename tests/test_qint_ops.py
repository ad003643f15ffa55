"""uint8/int8 tensors and the integer quantized operators on the CPU backend and the GPU kernel
descriptions, against onnxruntime: integer outputs equal, not close."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from gpu_harness import check_gpu
from onnx_models import check, single_op

BACKENDS = {"cpu": check, "gpu": check_gpu}
RNG = np.random.default_rng(808)
U8 = RNG.integers(0, 256, (4, 6)).astype(np.uint8)
I8 = RNG.integers(-128, 128, (4, 6)).astype(np.int8)
WIDE_F32 = RNG.uniform(-300, 300, (4, 6)).astype(np.float32)

# (input, ONNX target type); f32 -> 8 bits beyond the range wraps as onnxruntime's C casts do.
CAST_CASES = {
    "u8_to_f32": (U8, 1), "i8_to_f32": (I8, 1), "f32_to_u8": (WIDE_F32, 2), "f32_to_i8": (WIDE_F32, 3),
    "u8_to_i8": (U8, 3), "i8_to_u8": (I8, 2), "u8_to_i64": (U8, 7), "i8_to_i32": (I8, 6),
    "i64_to_u8": ((WIDE_F32 * 100).astype(np.int64), 2), "bool_to_u8": (U8 > 100, 2), "i8_to_bool": (I8, 9),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", sorted(CAST_CASES))
def test_cast_8bit(tmp_path, backend, case):
    x, to = CAST_CASES[case]
    BACKENDS[backend](single_op("Cast", [("x", x, False)], to=to), {"x": x}, tmp_path)


def binary_inputs(op: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """x and its reverse (nonzero for Div, so as to divide by a negative and a wrapping product)."""
    y = x[::-1].copy()
    if op == "Div":
        y[y == 0] = 1
    return {"a": x, "b": y}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("dtype", ["u8", "i8"])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Less", "GreaterOrEqual", "Equal"])
def test_8bit_elementwise(tmp_path, backend, dtype, op):
    feeds = binary_inputs(op, U8 if dtype == "u8" else I8)
    BACKENDS[backend](single_op(op, [(n, a, False) for n, a in feeds.items()], opset=14), feeds, tmp_path)


MOVEMENT_CASES = {  # op, extra inputs (name, value, is_initializer), attrs
    "transpose": ("Transpose", [], dict(perm=[1, 0])),
    "reshape": ("Reshape", [("shape", np.array([3, 8], np.int64), True)], {}),
    "slice": ("Slice", [("starts", np.array([1]), True), ("ends", np.array([5]), True),
                        ("axes", np.array([1]), True)], {}),
    "gather": ("Gather", [("idx", np.array([0, 3, 2, 3]), True)], dict(axis=1)),
    "concat": ("Concat", [("y", U8[::-1].copy(), False)], dict(axis=0)),
    "expand": ("Expand", [("shape", np.array([2, 4, 6], np.int64), True)], {}),
    "pad": ("Pad", [("pads", np.array([1, 0, 0, 2], np.int64), True), ("value", np.uint8(7), True)], {}),
    "where": ("Where", [("b", U8[::-1].copy(), False)], {}),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", sorted(MOVEMENT_CASES))
def test_8bit_movement(tmp_path, backend, case):
    op, extra, attrs = MOVEMENT_CASES[case]
    inputs = [("x", U8, False)] + extra
    if op == "Where":
        inputs = [("c", U8 > 128, False)] + inputs
    feeds = {n: a for n, a, init in inputs if not init}
    BACKENDS[backend](single_op(op, inputs, **attrs), feeds, tmp_path)


def dynamic_quantize_model():
    from onnx import helper
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zero_point"], name="the_node")
    graph = helper.make_graph([node], "dql", [helper.make_tensor_value_info("x", 1, [3, 40])],
                              [helper.make_empty_tensor_value_info(o) for o in ("y", "scale", "zero_point")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 8
    return m


DYNAMIC_QUANTIZE_INPUTS = {
    "mixed": RNG.uniform(-3, 7, (3, 40)).astype(np.float32),
    "positive": RNG.uniform(0.5, 2, (3, 40)).astype(np.float32),
    "negative": RNG.uniform(-9, -1, (3, 40)).astype(np.float32),
    "zeros": np.zeros((3, 40), np.float32),
    "ties": (np.arange(120, dtype=np.float32).reshape(3, 40) - 60) * np.float32(0.5),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", sorted(DYNAMIC_QUANTIZE_INPUTS))
def test_dynamic_quantize_linear(tmp_path, backend, case):
    x = DYNAMIC_QUANTIZE_INPUTS[case]
    BACKENDS[backend](dynamic_quantize_model(), {"x": x}, tmp_path)


def integer_operand(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    lo, hi = (0, 256) if dtype == "u8" else (-128, 128)
    return RNG.integers(lo, hi, shape).astype(np.uint8 if dtype == "u8" else np.int8)


# (A dtype and shape, B dtype and shape, zero points: None, "tensor" or "axis" (per column of B; onnxruntime
#  has no per-row zero point of A),
#  B a weight); K = 600 takes three exact f32 chunks, K = 258 one.
MATMUL_INTEGER_CASES = {
    "u8_u8_tensor": (("u8", (5, 7)), ("u8", (7, 9)), "tensor", False),
    "u8_i8_weight_axis": (("u8", (6, 600)), ("i8", (600, 11)), "axis", True),
    "i8_i8_no_zero_points": (("i8", (4, 258)), ("i8", (258, 3)), None, False),
    "batched_3d": (("u8", (2, 3, 300)), ("u8", (300, 5)), "tensor", True),
    "extremes_long_k": (("u8", (2, 1000)), ("u8", (1000, 2)), "extreme", False),
}


def matmul_integer_inputs(case: str) -> list:
    (ad, ash), (bd, bsh), zps, weight = MATMUL_INTEGER_CASES[case]
    a, b = integer_operand(ad, ash), integer_operand(bd, bsh)
    inputs = [("a", a, False), ("b", b, weight)]
    if zps == "extreme":  # every product 255 * 255 and a sum beyond 2^24: the chunks must add in int32
        a[:], b[:] = 255, 255
        inputs += [("a_zp", np.uint8(0), True), ("b_zp", np.uint8(0), True)]
    elif zps == "tensor":
        inputs += [("a_zp", integer_operand(ad, ()), True), ("b_zp", integer_operand(bd, ()), True)]
    elif zps == "axis":
        inputs += [("a_zp", integer_operand(ad, ()), True), ("b_zp", integer_operand(bd, (bsh[-1],)), True)]
    return inputs


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", sorted(MATMUL_INTEGER_CASES))
def test_matmul_integer(tmp_path, backend, case):
    inputs = matmul_integer_inputs(case)
    feeds = {n: a for n, a, init in inputs if not init}
    BACKENDS[backend](single_op("MatMulInteger", inputs, opset=10), feeds, tmp_path)


QLINEAR_MATMUL_CASES = {  # A, B dtypes and shapes, per-column B scale, opset
    "u8_2d": (("u8", (4, 20)), ("u8", (20, 6)), False, 10),
    "i8_3d_per_column": (("i8", (2, 3, 300)), ("i8", (300, 5)), True, 21),
}


def qlinear_matmul_inputs(case: str) -> list:
    (ad, ash), (bd, bsh), per_column, _ = QLINEAR_MATMUL_CASES[case]
    b_scale = RNG.uniform(0.001, 0.01, bsh[-1] if per_column else ()).astype(np.float32)
    return [("a", integer_operand(ad, ash), False), ("a_scale", np.float32(0.02), True),
            ("a_zp", integer_operand(ad, ()), True), ("b", integer_operand(bd, bsh), True),
            ("b_scale", b_scale, True), ("b_zp", integer_operand(bd, ()), True),
            ("y_scale", np.float32(0.05 if ash[-1] < 100 else 0.3), True), ("y_zp", integer_operand(ad, ()), True)]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", sorted(QLINEAR_MATMUL_CASES))
def test_qlinear_matmul(tmp_path, backend, case):
    inputs = qlinear_matmul_inputs(case)
    model = single_op("QLinearMatMul", inputs, opset=QLINEAR_MATMUL_CASES[case][3])
    BACKENDS[backend](model, {"a": inputs[0][1]}, tmp_path)


def computed_scale_model() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """DynamicQuantizeLinear's scale and zero point fed to QuantizeLinear (a real uint8 output) and
    to DequantizeLinear (as DynamicQuantizeLinear's function expansion does)."""
    from onnx import helper
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("QuantizeLinear", ["x2", "s", "z"], ["q2"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["back"])]
    graph = helper.make_graph(nodes, "computed", [helper.make_tensor_value_info(n, 1, [3, 40]) for n in ("x", "x2")],
                              [helper.make_empty_tensor_value_info(o) for o in ("q2", "back")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, {"x": DYNAMIC_QUANTIZE_INPUTS["mixed"], "x2": RNG.uniform(-5, 9, (3, 40)).astype(np.float32)}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_quantize_with_computed_scale(tmp_path, backend):
    BACKENDS[backend](*computed_scale_model(), tmp_path)


def dynamically_quantized(name: str, weight_type: str, workdir, **sizes) -> onnx.ModelProto:
    """onnxruntime's quantize_dynamic applied to a generated model, with every DynamicQuantizeLinear
    and MatMulInteger result also a graph output (the integer parts to compare exactly)."""
    import onnx_models
    from onnxruntime.quantization import QuantType, quantize_dynamic
    src, dst = Path(workdir) / f"{name}.onnx", Path(workdir) / f"{name}.quant.onnx"
    onnx.save(getattr(onnx_models, name)(**sizes), src)
    quantize_dynamic(src, dst, weight_type=getattr(QuantType, weight_type))
    model = onnx.load(dst)
    inner = [o for n in model.graph.node if n.op_type in ("DynamicQuantizeLinear", "MatMulInteger") for o in n.output]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(o) for o in inner)
    return model


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("weight_type", ["QUInt8", "QInt8"])
@pytest.mark.parametrize("name,shape,sizes", [("mlp", (1, 1, 28, 28), {}),
                                              ("transformer", (1, 16, 32), dict(seq=16, hidden=32, heads=2))])
def test_dynamically_quantized_model(tmp_path, backend, weight_type, name, shape, sizes):
    """Integer outputs (levels, zero points, int32 products) equal; the f32 rescales within 1e-5."""
    from gpu_harness import emulate
    from onnx_models import kiln_run, run_onnxruntime
    model = dynamically_quantized(name, weight_type, tmp_path, **sizes)
    feeds = {model.graph.input[0].name: RNG.standard_normal(shape).astype(np.float32)}
    want = run_onnxruntime(model, feeds)
    got = kiln_run(model, feeds, tmp_path) if backend == "cpu" else emulate(model, feeds, tmp_path)[0]
    assert [g.dtype for g in got] == [w.dtype for w in want]
    for out, g, w in zip(model.graph.output, got, want):
        if w.dtype.kind in "iu":
            np.testing.assert_array_equal(g, w, err_msg=out.name)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=out.name)


CONV_INTEGER_CASES = {  # x dtype and shape, w dtype and shape, attrs, per-channel weight scale (QLinearConv)
    "u8_pads": (("u8", (1, 3, 9, 9)), ("u8", (5, 3, 3, 3)), dict(pads=[1, 1, 1, 1]), False),
    "u8_i8_strided_per_channel": (("u8", (2, 4, 11, 10)), ("i8", (6, 4, 3, 2)), dict(strides=[2, 1]), True),
    "dilated_uneven_pads": (("u8", (1, 2, 8, 9)), ("u8", (3, 2, 3, 3)), dict(dilations=[2, 1], pads=[2, 0, 1, 2]),
                            False),
    "same_upper": (("u8", (1, 2, 8, 9)), ("u8", (3, 2, 4, 4)), dict(auto_pad="SAME_UPPER", strides=[2, 2]), False),
    "wide_1x1": (("u8", (1, 300, 4, 5)), ("u8", (7, 300, 1, 1)), {}, False),
    "depthwise_strided": (("u8", (1, 6, 9, 9)), ("i8", (6, 1, 3, 3)), dict(group=6, pads=[1, 1, 1, 1], strides=[2, 2]),
                          True),
    "grouped_by_tap": (("u8", (2, 80, 6, 7)), ("u8", (4, 40, 3, 3)), dict(group=2, pads=[1, 0, 1, 2], dilations=[1, 2]),
                       True),
}


def conv_integer_inputs(case: str, qlinear: bool) -> list:
    (xd, xsh), (wd, wsh), _, per_channel = CONV_INTEGER_CASES[case]
    x, w = integer_operand(xd, xsh), integer_operand(wd, wsh)
    w_zp = integer_operand(wd, ())  # onnxruntime has no per-channel weight zero point
    if not qlinear:
        return [("x", x, False), ("w", w, True), ("x_zp", integer_operand(xd, ()), True), ("w_zp", w_zp, True)]
    w_scale = RNG.uniform(0.002, 0.01, wsh[0] if per_channel else ()).astype(np.float32)
    bias = RNG.integers(-5000, 5000, wsh[0]).astype(np.int32)
    return [("x", x, False), ("x_scale", np.float32(0.02), True), ("x_zp", integer_operand(xd, ()), True),
            ("w", w, True), ("w_scale", w_scale, True), ("w_zp", w_zp, True),
            ("y_scale", np.float32(0.05 * np.sqrt(np.prod(wsh[1:]))), True), ("y_zp", integer_operand(xd, ()), True),
            ("bias", bias, True)]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("qlinear", [False, True])
@pytest.mark.parametrize("case", sorted(CONV_INTEGER_CASES))
def test_conv_integer(tmp_path, backend, case, qlinear):
    inputs = conv_integer_inputs(case, qlinear)
    model = single_op("QLinearConv" if qlinear else "ConvInteger", inputs, opset=10, **CONV_INTEGER_CASES[case][2])
    BACKENDS[backend](model, {"x": inputs[0][1]}, tmp_path)


def test_groups_of_more_than_258_channels_are_refused(tmp_path):
    """Past 258 products an f32 sum of centred 8-bit values may round; a grouped conv is not split in K."""
    from kiln.compiler.errors import CompileError
    from onnx_models import kiln_jit
    x, w = integer_operand("u8", (1, 600, 3, 3)), integer_operand("u8", (2, 300, 1, 1))
    model = single_op("ConvInteger", [("x", x, False), ("w", w, True)], opset=10, group=2)
    with pytest.raises(CompileError, match=r"^ConvInteger node the_node: 600 input channels in 2 groups: at most "
                                           r"258 per group are supported$"):
        kiln_jit(model, tmp_path)


def test_per_row_zero_point_is_refused(tmp_path):
    from kiln.compiler.errors import CompileError
    from onnx_models import kiln_jit
    a, b = integer_operand("u8", (4, 7)), integer_operand("u8", (7, 5))
    model = single_op("MatMulInteger", [("a", a, False), ("b", b, True), ("a_zp", integer_operand("u8", (4,)), True)],
                      opset=10)
    with pytest.raises(CompileError, match=r"^MatMulInteger node the_node: zero point a_zp of shape \[4\] is not "
                                           r"supported for a of shape \[4, 7\]: one value \(per tensor\) is$"):
        kiln_jit(model, tmp_path)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("dtype", ["u8", "i8"])
def test_max_pool_8bit(tmp_path, backend, dtype):
    x = integer_operand(dtype, (1, 2, 7, 8))
    model = single_op("MaxPool", [("x", x, False)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    BACKENDS[backend](model, {"x": x}, tmp_path)
