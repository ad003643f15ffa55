"""Every supported operator against onnxruntime, one-node models with seeded inputs."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.compiler.errors import CompileError
from onnx_models import F, Builder, assert_close, check, kiln_jit, kiln_run, pointwise_depthwise, single_op

RNG = np.random.default_rng(1234)


def rand(*shape: int, lo: float = -2.0, hi: float = 2.0) -> np.ndarray:
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def run(tmp_path, op: str, inputs: list, n_out: int = 1, opset: int = 17, specials: bool = True, **attrs) -> None:
    """inputs: (name, array, is_initializer); also checked with NaN and infinities in the inputs
    unless `specials` is off (see the op's test for why)."""
    model = single_op(op, inputs, n_out, opset, **attrs)
    check(model, {n: a for n, a, init in inputs if not init}, tmp_path, specials=specials)


# -- Conv -----------------------------------------------------------------------------------
CONV_CASES = [
    # (x shape, w shape, attrs)
    ((1, 3, 9, 9), (5, 3, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((1, 3, 11, 13), (4, 3, 3, 3), dict(strides=[2, 2])),
    ((1, 2, 12, 10), (3, 2, 3, 2), dict(dilations=[2, 1], pads=[1, 0, 2, 1])),
    ((2, 4, 7, 7), (6, 2, 3, 3), dict(group=2, pads=[1, 1, 1, 1])),
    ((1, 8, 10, 10), (8, 1, 3, 3), dict(group=8, strides=[2, 2], pads=[1, 1, 1, 1])),
    ((1, 6, 9, 9), (6, 1, 5, 5), dict(group=6, pads=[2, 2, 2, 2], dilations=[1, 1])),
    ((2, 20, 12, 11), (20, 1, 3, 3), dict(group=20, dilations=[2, 1], pads=[2, 0, 1, 2])),
    ((1, 4, 8, 8), (8, 1, 3, 3), dict(group=4, pads=[1, 1, 1, 1])),
    ((1, 3, 10, 9), (4, 3, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    ((1, 3, 10, 9), (4, 3, 4, 4), dict(auto_pad="SAME_LOWER")),
    ((1, 3, 10, 9), (4, 3, 3, 3), dict(auto_pad="VALID")),
    ((1, 40, 6, 7), (70, 40, 1, 1), {}),
    ((1, 16, 9, 9), (24, 16, 1, 1), dict(strides=[2, 2])),
    ((1, 20, 15, 15), (130, 20, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((3, 5, 17), (7, 5, 3), dict(pads=[1, 1], strides=[2])),
    ((1, 300, 5, 5), (32, 300, 1, 1), {}),
    # 3x3 stride 1 with >= 32 output tiles: Winograd F(2x2, 3x3) (odd sizes, channel tails)
    ((2, 16, 7, 26), (20, 16, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((1, 8, 12, 13), (16, 8, 3, 3), dict(pads=[0, 1, 2, 1])),
    # wide enough for the implicit-GEMM route (padded copy + taps)
    ((1, 16, 4, 26), (20, 16, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((1, 17, 9, 50), (70, 17, 3, 3), dict(strides=[2, 2], pads=[0, 1, 2, 1])),
    ((1, 16, 11, 30), (8, 16, 3, 5), dict(dilations=[2, 2], pads=[2, 4, 2, 4])),
    ((1, 32, 6, 28), (40, 16, 3, 3), dict(group=2, auto_pad="SAME_UPPER")),
    # 3-D: a sum over the kernel's depth of 2-D convolutions on cpu and the GPU description
    ((1, 3, 5, 6, 7), (4, 3, 3, 3, 3), dict(pads=[1, 1, 1, 1, 1, 1])),
    ((2, 2, 7, 6, 5), (3, 2, 3, 2, 3), dict(strides=[2, 1, 2], pads=[1, 0, 2, 2, 1, 0])),
    ((1, 4, 9, 5, 6), (6, 2, 2, 3, 3), dict(group=2, dilations=[3, 1, 2], pads=[0, 1, 2, 1, 1, 2])),
    ((1, 4, 6, 6, 6), (4, 1, 3, 3, 3), dict(group=4, strides=[2, 2, 2], auto_pad="SAME_UPPER")),
    ((1, 2, 4, 5, 5), (3, 2, 1, 2, 2), {}),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,attrs", CONV_CASES)
def test_conv(tmp_path, xs, ws, attrs, bias):
    inputs = [("x", rand(*xs), False), ("w", rand(*ws, lo=-0.5, hi=0.5), True)]
    if bias:
        inputs.append(("b", rand(ws[0]), True))
    # No infinities: Winograd's transforms (inf - inf) and GEMM's zero-padded panels (inf * 0) make NaN
    # where a direct convolution gives +-inf. NaN inputs give NaN outputs either way (test_nan_through_a_cnn).
    run(tmp_path, "Conv", inputs, specials=False, **attrs)


@pytest.mark.parametrize("batch,k,stride", [(1, 3, 1), (2, 3, 2), (1, 5, 2)])
def test_pointwise_then_depthwise(tmp_path, batch, k, stride):
    """MobileNet's expand (1x1 conv with bias, BatchNormalization, ReLU6) then depthwise conv."""
    check(pointwise_depthwise(batch, k, stride), {"x": rand(batch, 8, 48, 44)}, tmp_path)


# -- pooling --------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 2], dilations=[2, 1]),
    dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
])
def test_maxpool(tmp_path, attrs):
    run(tmp_path, "MaxPool", [("x", rand(2, 3, 11, 10), False)], specials=False, **attrs)  # see test_maxpool_nan


def test_maxpool_1d(tmp_path):
    run(tmp_path, "MaxPool", [("x", rand(1, 4, 13), False)], kernel_shape=[3], strides=[2], specials=False)


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1, count_include_pad=1),
])
def test_avgpool(tmp_path, attrs):
    run(tmp_path, "AveragePool", [("x", rand(1, 5, 11, 10), False)], **attrs)


def test_global_average_pool(tmp_path):
    run(tmp_path, "GlobalAveragePool", [("x", rand(2, 7, 5, 6), False)])


# -- Gemm / MatMul --------------------------------------------------------------------------
@pytest.mark.parametrize("ta,tb,alpha,beta,cshape", [
    (0, 0, 1.0, 1.0, (9,)), (1, 0, 0.5, 2.0, (1,)), (0, 1, 1.0, 1.0, (5, 9)),
    (1, 1, 2.0, 0.5, (5, 1)), (0, 0, 1.0, 0.0, (9,)),
])
@pytest.mark.parametrize("const_b", [True, False])
def test_gemm(tmp_path, ta, tb, alpha, beta, cshape, const_b):
    a = rand(*((7, 5) if ta else (5, 7)))
    b = rand(*((9, 7) if tb else (7, 9)))
    run(tmp_path, "Gemm", [("a", a, False), ("b", b, const_b), ("c", rand(*cshape), True)],
        transA=ta, transB=tb, alpha=alpha, beta=beta)


def test_gemm_without_c(tmp_path):
    run(tmp_path, "Gemm", [("a", rand(3, 70), False), ("b", rand(70, 130), True)])


@pytest.mark.parametrize("ashape,bshape,const_b", [
    ((5, 7), (7, 9), True), ((1, 300), (300, 70), True), ((13, 300), (300, 37), False),
    ((2, 3, 6, 8), (2, 3, 8, 5), False), ((2, 1, 6, 8), (3, 8, 17), False),
    ((4, 6, 8), (8, 20), True), ((2, 4, 6, 8), (4, 8, 20), True), ((8,), (8, 5), True),
    ((3, 8), (8,), False), ((8,), (8,), False), ((1, 2, 65), (65, 129), True),
])
def test_matmul(tmp_path, ashape, bshape, const_b):
    run(tmp_path, "MatMul", [("a", rand(*ashape), False), ("b", rand(*bshape), const_b)])


# -- elementwise ----------------------------------------------------------------------------
BROADCASTS = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (3, 1)), ((4,), (2, 3, 4)), ((2, 1, 4), (1, 3, 1)),
              ((5, 1), ())]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("sa,sb", BROADCASTS)
def test_binary(tmp_path, op, sa, sb):
    b = rand(*sb, lo=0.5, hi=2.0) if op == "Div" else rand(*sb)
    run(tmp_path, op, [("a", rand(*sa), False), ("b", b, False)])


@pytest.mark.parametrize("const", [False, True])
def test_binary_with_constant(tmp_path, const):
    run(tmp_path, "Mul", [("a", rand(3, 5), False), ("b", rand(5), const)])


def test_variadic_max_min(tmp_path):
    run(tmp_path, "Max", [("a", rand(3, 4), False), ("b", rand(4), False), ("c", rand(3, 1), False)])
    run(tmp_path, "Min", [("a", rand(3, 4), False), ("b", rand(1), True), ("c", rand(3, 4), False)])


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, -1.0, 1.7, -2.0])
def test_pow_constant(tmp_path, exponent):
    # No specials: C's pow(-inf, y) is +inf for a non-integral y > 0, where kiln's sqrt/exp-log give NaN
    run(tmp_path, "Pow", [("x", rand(4, 7, lo=0.1, hi=3.0), False),
                          ("y", np.array(exponent, np.float32), True)], specials=False)


def test_pow_runtime(tmp_path):
    run(tmp_path, "Pow", [("x", rand(4, 7, lo=0.1, hi=3.0), False), ("y", rand(7), False)])


def test_pow_negative_base_integer_exponent(tmp_path):
    run(tmp_path, "Pow", [("x", rand(3, 4), False),
                          ("y", np.array([2, 3, 1, -1], np.float32), False)])


UNARY = {
    "Relu": {}, "Sigmoid": {}, "Tanh": {}, "Erf": {}, "Exp": {}, "Neg": {}, "Identity": {},
    "HardSwish": {}, "HardSigmoid": dict(alpha=0.3, beta=0.4),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(tmp_path, op):
    run(tmp_path, op, [("x", rand(3, 17, lo=-6, hi=6), False)], **UNARY[op])


# Elementwise math on inputs spanning each op's domain, its edges and beyond (NaN outside it).
MATH_INPUTS = {
    "Sin": (-40, 40), "Cos": (-40, 40), "Tan": (-1.5, 1.5), "Asin": (-1.1, 1.1), "Acos": (-1.1, 1.1),
    "Atan": (-30, 30), "Sinh": (-10, 10), "Cosh": (-10, 10), "Asinh": (-50, 50), "Acosh": (0.5, 50),
    "Atanh": (-1.1, 1.1), "Floor": (-5, 5), "Ceil": (-5, 5), "Round": (-5, 5),
}


@pytest.mark.parametrize("base", [np.int32, np.int64])
@pytest.mark.parametrize("exponent", [np.int32, np.int64, np.float32])
def test_integer_pow(tmp_path, base, exponent):
    """Exact integer powers up to the type's range, negative exponents, and (float exponents) a
    fractional power truncated toward zero."""
    x = np.array([[2, -3, 1, -1, 7, 5, 11, -2, 3]], base)  # 0 to a negative power is undefined
    e = np.array([[0], [1], [3], [4], [6], [7], [-1], [-2]], exponent)
    if base == np.int64 and exponent != np.float32:
        e = np.concatenate([e, np.array([[13]], exponent)])  # onnxruntime goes through f64: exact below 2^53
    if exponent == np.float32:
        e = np.concatenate([e, np.float32([[0.5], [2.5], [-0.5]])])
        x = np.abs(x)  # a negative base's fractional power is NaN, whose integer cast is undefined
    run(tmp_path, "Pow", [("x", x, False), ("e", e, False)], opset=15, specials=False)


@pytest.mark.parametrize("fmod", [0, 1])
def test_float_mod(tmp_path, fmod):
    """Mixed signs, quotients that round up to an integer, infinite and zero divisors, -0."""
    a = np.float32([-4.3, 7.2, 5.0, 4.3, -7.2, 8.0, 1.0, -1.0, 5.0, -5.0, 0.0, -0.0, 1e7, -1e7, 0.3, 6.0, 1e7])
    b = np.float32([2.1, -3.4, 8.0, -2.1, 3.4, 5.0, 0.1, 0.1, np.inf, np.inf, -np.inf, 3.0, 3.0, 3.0, 0.1, 0.0, 0.1])
    a = np.concatenate([a, rand(40, lo=-50, hi=50)])
    b = np.concatenate([b, rand(40, lo=-7, hi=7)])
    if fmod:
        run(tmp_path, "Mod", [("a", a, False), ("b", b, False)], fmod=1, opset=13)
        return
    # onnxruntime refuses float Mod with fmod = 0; onnx's reference is numpy's (Python's) mod.
    model = single_op("Mod", [("a", a, False), ("b", b, False)], 1, 13, fmod=0)
    jit, _ = kiln_jit(model, tmp_path)
    with np.errstate(all="ignore"):
        assert_close(jit.run(a, b)[0], np.mod(a, b))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"])
def test_bitwise(tmp_path, op, dtype):
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (3, 4, 5), dtype=dtype, endpoint=True)
    b = np.array([0, -1, info.min, info.max, 0x5A5A], dtype)
    run(tmp_path, op, [("a", a, False)] + ([("b", b, False)] if op != "BitwiseNot" else []), opset=18)


def bit_shift_case(dtype, direction: str):
    """Shifts in range, by the width and more, and negative ones, of negative and positive values;
    the model and onnx's reference result (onnxruntime shifts unsigned types only)."""
    from onnx.reference import ReferenceEvaluator
    width = np.iinfo(dtype).bits
    a = np.array([[1, -1, 5, -8, np.iinfo(dtype).max, np.iinfo(dtype).min]], dtype)
    b = np.array([[0], [1], [3], [width - 1], [width], [width + 7], [-1]], dtype)
    model = single_op("BitShift", [("a", a, False), ("b", b, False)], 1, 28, direction=direction)
    return model, a, b, ReferenceEvaluator(model).run(None, {"a": a, "b": b})[0]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bit_shift(tmp_path, dtype, direction):
    model, a, b, want = bit_shift_case(dtype, direction)
    jit, _ = kiln_jit(model, tmp_path)
    np.testing.assert_array_equal(jit.run(a, b)[0], want)


@pytest.mark.parametrize("op", sorted(MATH_INPUTS))
def test_math(tmp_path, op):
    lo, hi = MATH_INPUTS[op]
    edges = np.float32([0, -0.0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 1e-5, -1e-5, 1e-3])
    x = np.concatenate([rand(4, 29, lo=lo, hi=hi).ravel(), edges])
    run(tmp_path, op, [("x", x, False)], opset=17)


# Ops the frontend builds from IR ops (compiler/frontend/composites.py): (op, attrs, opset).
COMPOSITES = {
    "reciprocal": ("Reciprocal", {}, 17), "leaky_relu": ("LeakyRelu", dict(alpha=0.2), 17),
    "leaky_relu_steep": ("LeakyRelu", dict(alpha=1.5), 17), "elu": ("Elu", dict(alpha=0.7), 17),
    "celu": ("Celu", dict(alpha=2.0), 17), "selu": ("Selu", {}, 17), "softplus": ("Softplus", {}, 17),
    "softsign": ("Softsign", {}, 17), "mish": ("Mish", {}, 18),
    "thresholded_relu": ("ThresholdedRelu", dict(alpha=0.5), 17), "shrink": ("Shrink", dict(bias=0.3, lambd=0.7), 17),
    "is_nan": ("IsNaN", {}, 17), "is_inf": ("IsInf", {}, 17), "is_inf_positive": ("IsInf", dict(detect_negative=0), 17),
    "sign": ("Sign", {}, 17),
}


@pytest.mark.parametrize("case", sorted(COMPOSITES))
def test_composite(tmp_path, case):
    op, attrs, opset = COMPOSITES[case]
    x = np.concatenate([rand(3, 17, lo=-6, hi=6).ravel(), np.float32([0, -0.0, 30, -30, 1e-3, 90, -90])])
    run(tmp_path, op, [("x", x, False)], opset=opset, **attrs)


def test_sign_of_integers(tmp_path):
    run(tmp_path, "Sign", [("x", np.arange(-3, 4, dtype=np.int64), False)])


@pytest.mark.parametrize("op,attrs", [("GlobalMaxPool", {}), ("MeanVarianceNormalization", {}),
                                      ("MeanVarianceNormalization", dict(axes=[1, 2])),
                                      ("LpNormalization", dict(axis=1, p=1)), ("LpNormalization", {})])
def test_normalisations_and_global_max(tmp_path, op, attrs):
    # onnxruntime's GlobalMaxPool drops a NaN; kiln's max propagates it, as its MaxPool and ReduceMax do
    x = rand(2, 3, 4, 5)
    x[1, :, 2] = 0  # zero vectors: LpNormalization leaves them 0
    run(tmp_path, op, [("x", x, False)], specials=op != "GlobalMaxPool", **attrs)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 4, 7)])
def test_instance_normalization(tmp_path, shape):
    run(tmp_path, "InstanceNormalization", [("x", rand(*shape), False), ("s", rand(shape[1]), True),
                                            ("b", rand(shape[1]), True)], epsilon=1e-3)


def test_group_normalization(tmp_path):
    run(tmp_path, "GroupNormalization", [("x", rand(2, 6, 3, 4), False), ("s", rand(6), True), ("b", rand(6), True)],
        opset=21, num_groups=3, epsilon=1e-4)


@pytest.mark.parametrize("op,attrs", [("DepthToSpace", dict(blocksize=2)), ("DepthToSpace", dict(blocksize=2, mode="CRD")),
                                      ("SpaceToDepth", dict(blocksize=2))])
def test_space_and_depth(tmp_path, op, attrs):
    run(tmp_path, op, [("x", rand(2, 8, 4, 6), False)], **attrs)


@pytest.mark.parametrize("x,repeats", [(rand(2, 3), [2, 3]), (np.arange(6, dtype=np.int64).reshape(1, 2, 3), [3, 1, 2]),
                                       (rand(4), [1])])
def test_tile(tmp_path, x, repeats):
    run(tmp_path, "Tile", [("x", x, False), ("r", np.array(repeats, np.int64), True)], specials=x.dtype == np.float32)


@pytest.mark.parametrize("k,dtype", [(0, None), (1, 7), (-2, None)])
def test_eye_like(tmp_path, k, dtype):
    attrs = dict(k=k, **({"dtype": dtype} if dtype else {}))
    run(tmp_path, "EyeLike", [("x", rand(3, 5), False)], specials=False, **attrs)


ATTENTION = {
    "4d": ([("q", (2, 3, 4, 8)), ("k", (2, 3, 6, 8)), ("v", (2, 3, 6, 5))], 1, {}),
    "3d_gqa_causal": ([("q", (2, 4, 12)), ("k", (2, 4, 6)), ("v", (2, 4, 6))], 1,
                      dict(q_num_heads=4, kv_num_heads=2, is_causal=1)),
    "scale_softcap": ([("q", (1, 2, 3, 4)), ("k", (1, 2, 5, 4)), ("v", (1, 2, 5, 4))], 1, dict(scale=0.7, softcap=2.0)),
    "float_mask_qk_out": ([("q", (1, 2, 3, 4)), ("k", (1, 2, 5, 4)), ("v", (1, 2, 5, 4)), ("m", (3, 5))], 4,
                          dict(qk_matmul_output_mode=1)),
    "past": ([("q", (1, 2, 2, 4)), ("k", (1, 2, 2, 4)), ("v", (1, 2, 2, 4)), ("", None), ("pk", (1, 2, 3, 4)),
              ("pv", (1, 2, 3, 4))], 3, dict(is_causal=1)),
}


@pytest.mark.parametrize("case", sorted(ATTENTION))
def test_attention(tmp_path, case):
    inputs, n_out, attrs = ATTENTION[case]
    feeds = [(n, rand(*shape), False) if n else ("", None, False) for n, shape in inputs]
    model = single_op("Attention", [f for f in feeds if f[0]], n_out, 23, **attrs)
    if any(not n for n, _ in inputs):  # an optional input left out keeps its place
        model.graph.node[0].input[:] = [n for n, _ in inputs]
    check(model, {n: a for n, a, _ in feeds if n}, tmp_path)


@pytest.mark.parametrize("mode,attrs", [(3, dict(is_causal=1)), (3, dict(softcap=1.5)), (0, {})])
def test_attention_with_a_bool_mask(tmp_path, mode, attrs):
    """Row 0 is masked entirely: its weights and output are 0."""
    mask = np.tril(np.ones((3, 5), np.bool_), 1)
    mask[0] = False
    model = single_op("Attention", [("q", rand(1, 2, 3, 4), False), ("k", rand(1, 2, 5, 4), False),
                                    ("v", rand(1, 2, 5, 4), False), ("m", mask, True)], 4, 23,
                      qk_matmul_output_mode=mode, **attrs)
    check(model, {"q": rand(1, 2, 3, 4), "k": rand(1, 2, 5, 4), "v": rand(1, 2, 5, 4)}, tmp_path)


@pytest.mark.parametrize("mask", [rand(3, 4), np.tril(np.ones((3, 4), np.bool_))])
def test_attention_as_onnx_defines(tmp_path, mask):
    """Where onnxruntime 1.31 differs from onnx's reference: a mask shorter than the keys (refused;
    the reference pads it as masked) and the masked scores (-FLT_MAX; the reference says -inf)."""
    from onnx.reference import ReferenceEvaluator
    feeds = {"q": rand(1, 2, 3, 4), "k": rand(1, 2, 5, 4), "v": rand(1, 2, 5, 4)}
    model = single_op("Attention", [*((n, a, False) for n, a in feeds.items()), ("m", mask, True)], 4, 23,
                      is_causal=1, qk_matmul_output_mode=2)
    for got, want in zip(kiln_run(model, feeds, tmp_path), ReferenceEvaluator(model).run(None, feeds)):
        assert_close(got, want)


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_integer_mod(tmp_path, fmod, dtype):
    a = np.array([[-7, -6, -1, 0, 1, 6, 7, 13]], dtype)
    b = np.array([[3], [-3], [5]], dtype)
    run(tmp_path, "Mod", [("a", a, False), ("b", b, False)], fmod=fmod)


@pytest.mark.parametrize("slope", [(1, 5), (3, 1), (1,)])
def test_prelu(tmp_path, slope):
    run(tmp_path, "PRelu", [("x", rand(2, 3, 5), False), ("slope", rand(*slope), True)])


@pytest.mark.parametrize("axis,scale", [(-1, (8,)), (-2, (3, 8)), (1, (3, 8))])
def test_rms_normalization(tmp_path, axis, scale):
    run(tmp_path, "RMSNormalization", [("x", rand(2, 3, 8), False), ("s", rand(*scale), True)], opset=23, axis=axis,
        epsilon=1e-3)


@pytest.mark.parametrize("x,like", [(rand(3, 5, lo=-9, hi=9), np.zeros(2, np.int64)),
                                    (np.arange(-6, 6, dtype=np.int64).reshape(3, 4), np.zeros(1, np.float32))])
def test_cast_like(tmp_path, x, like):
    run(tmp_path, "CastLike", [("x", x, False), ("like", like, True)], opset=19, specials=x.dtype != np.float32)


@pytest.mark.parametrize("start,limit,delta", [(0, 10, 3), (10, -2, -4), (2.5, -1.0, -0.75), (5, 5, 1)])
def test_range_folds(tmp_path, start, limit, delta):
    dtype = np.float32 if isinstance(start, float) else np.int64
    inputs = [(n, np.array(v, dtype), True) for n, v in (("s", start), ("l", limit), ("d", delta))]
    check(single_op("Range", inputs, 1, 17), {}, tmp_path)  # the whole graph folds to its output


@pytest.mark.parametrize("upper,k", [(1, 0), (0, 0), (1, 2), (0, -1), (1, -7)])
def test_trilu(tmp_path, upper, k):
    run(tmp_path, "Trilu", [("x", rand(2, 4, 5), False), ("k", np.array(k, np.int64), True)], opset=14, upper=upper)


def test_trilu_of_integers_without_k(tmp_path):
    run(tmp_path, "Trilu", [("x", np.arange(12, dtype=np.int64).reshape(3, 4), False)], opset=14, upper=0)


def test_sqrt(tmp_path):
    run(tmp_path, "Sqrt", [("x", rand(5, 9, lo=0.0, hi=10.0), False)])


def test_wide_range_transcendentals(tmp_path):
    x = np.linspace(-30, 30, 601, dtype=np.float32)
    for op in ("Sigmoid", "Tanh", "Erf"):
        run(tmp_path, op, [("x", x, False)])
    run(tmp_path, "Exp", [("x", np.linspace(-80, 80, 401, dtype=np.float32), False)])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(tmp_path, approximate):
    # onnxruntime's tanh form gives NaN for -inf (-inf * 0); kiln gives the limit, -inf * 0 avoided
    run(tmp_path, "Gelu", [("x", rand(4, 33, lo=-5, hi=5), False)], opset=20, approximate=approximate,
        specials=approximate != "tanh")


@pytest.mark.parametrize("lo,hi", [(0.0, 6.0), (-1.0, None), (None, 0.5), (None, None), (2.0, 1.0)])
def test_clip(tmp_path, lo, hi):
    x = rand(4, 9, lo=-8, hi=8)
    inits = {n: np.array(v, np.float32) for n, v in (("lo", lo), ("hi", hi)) if v is not None}
    names = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("Clip", names, ["y"], name="the_node")
    graph = helper.make_graph([node], "clip", [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_empty_tensor_value_info("y")],
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    check(model, {"x": x}, tmp_path)


def test_where(tmp_path):
    cond = RNG.uniform(size=(3, 1, 5)) > 0.5
    run(tmp_path, "Where", [("c", cond, False), ("a", rand(3, 4, 5), False), ("b", rand(4, 1), False)])


def ints(*shape: int, dtype=np.int64) -> np.ndarray:
    return RNG.integers(-3, 4, shape).astype(dtype)


def bools(*shape: int) -> np.ndarray:
    return np.asarray(RNG.uniform(size=shape) > 0.5)


COMPARISONS = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]


@pytest.mark.parametrize("op", COMPARISONS)
@pytest.mark.parametrize("sa,sb", BROADCASTS)
def test_comparison(tmp_path, op, sa, sb):
    a, b = rand(*sa), rand(*sb)
    a.reshape(-1)[::3] = b.reshape(-1)[0] if b.size else 0  # ties, so the "or equal" matters
    run(tmp_path, op, [("a", a, False), ("b", b, False)])


@pytest.mark.parametrize("op", COMPARISONS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_comparison_of_integers(tmp_path, op, dtype):
    run(tmp_path, op, [("a", ints(3, 4, dtype=dtype), False), ("b", ints(4, dtype=dtype), False)])


def test_equal_of_bools_and_constant(tmp_path):
    run(tmp_path, "Equal", [("a", bools(2, 5), False), ("b", bools(5), True)])
    run(tmp_path, "Less", [("a", rand(2, 5), False), ("b", np.array(0.5, np.float32), True)])


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
@pytest.mark.parametrize("sa,sb", BROADCASTS)
def test_logic(tmp_path, op, sa, sb):
    run(tmp_path, op, [("a", bools(*sa), False), ("b", bools(*sb), False)])


def test_not(tmp_path):
    run(tmp_path, "Not", [("x", bools(3, 7), False)])


def test_where_of_a_comparison_and_a_bool_output(tmp_path):
    """Greater feeds Where and is a graph output too; Not and And on the way (one fused program)."""
    x, y = rand(4, 6), rand(6)
    nodes = [helper.make_node("Greater", ["x", "y"], ["gt"], name="gt"),
             helper.make_node("Not", ["gt"], ["le"], name="not"),
             helper.make_node("And", ["le", "m"], ["pick"], name="and"),
             helper.make_node("Where", ["pick", "x", "y"], ["out"], name="where")]
    graph = helper.make_graph(nodes, "cmp", [helper.make_tensor_value_info("x", 1, x.shape),
                                             helper.make_tensor_value_info("y", 1, y.shape),
                                             helper.make_tensor_value_info("m", 9, (4, 1))],
                              [helper.make_empty_tensor_value_info("out"), helper.make_empty_tensor_value_info("gt")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    check(model, {"x": x, "y": y, "m": bools(4, 1)}, tmp_path, specials=True)


@pytest.mark.parametrize("producer", ["Conv", "MatMul"])
def test_comparison_in_a_gemm_epilogue(tmp_path, producer):
    """Greater and Where fused into a convolution's (or matmul's) vectorised epilogue: a leaky ReLU."""
    b = Builder(1)
    if producer == "Conv":
        h, shape = b.conv("x", 8, 24, 3), [1, 8, 9, 9]
    else:
        h, shape = b.op("MatMul", ["x", b.weight((16, 33))]), [5, 16]
    y = b.op("Where", [b.op("Greater", [h, b.const(np.float32(0))]), h, b.op("Mul", [h, b.const(np.float32(0.1))])])
    # No specials through Conv: see test_conv
    check(b.model([("x", F, shape)], [(y, F, None)]), {"x": rand(*shape)}, tmp_path, specials=producer == "MatMul")


@pytest.mark.parametrize("chain", [("Cast", 7), ("Cast", 1)])
def test_cast(tmp_path, chain):
    run(tmp_path, "Cast", [("x", rand(3, 5, lo=-9, hi=9), False)], to=chain[1])


def test_cast_int_to_float(tmp_path):
    run(tmp_path, "Cast", [("x", RNG.integers(-50, 50, (4, 6)).astype(np.int64), False)], to=1)


# -- normalisation and reductions -----------------------------------------------------------
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_softmax(tmp_path, op, axis):
    run(tmp_path, op, [("x", rand(3, 7, 5, lo=-10, hi=10), False)], axis=axis)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", [((2, 60), -1), ((2, 76), -1), ((1, 92, 3), 1), ((4, 124), -1)])
def test_softmax_rows_llvm_vectorizer_once_aborted_on(tmp_path, op, shape, axis):
    """LLVM's loop vectorizer hit an assertion (and killed the process) on these row lengths."""
    run(tmp_path, op, [("x", rand(*shape, lo=-10, hi=10), False)], axis=axis)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("n", [10, 11, 15, 33])
def test_softmax_short_rows_led_by_minus_infinity(tmp_path, op, n):
    """As an attention mask leaves rows: LLVM 20 vectorised a maxnum reduction so that it skipped
    the last elements of short rows, and a row's max was -inf (every output NaN)."""
    x = rand(3, n, lo=-10, hi=10)
    x[:, :-2] = -np.inf
    run(tmp_path, op, [("x", x, False)], axis=-1)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum"])
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), ([-1], 1), (None, 0), ([1, 2], 1)])
def test_reduce(tmp_path, op, axes, keepdims):
    x = ("x", rand(3, 4, 5), False)
    if op == "ReduceSum":
        inputs = [x] + ([("axes", np.array(axes, np.int64), True)] if axes else [])
        run(tmp_path, op, inputs, keepdims=keepdims)
    else:
        extra = {"axes": axes} if axes else {}
        run(tmp_path, op, [x], keepdims=keepdims, **extra)


REDUCE_FAMILY = ["ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                 "ReduceLogSumExp", "ReduceSumSquare", "ReduceMean", "ReduceSum"]


def reduce_input(op: str, *shape: int) -> np.ndarray:
    """Positive where a log needs it; near 1 for products, so they stay in range."""
    if op == "ReduceLogSum":
        return rand(*shape, lo=0.1, hi=2.0)
    return rand(*shape, lo=0.5, hi=1.5) if op == "ReduceProd" else rand(*shape, lo=-3, hi=3)


@pytest.mark.parametrize("op", REDUCE_FAMILY)
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), ([-1], 0), (None, 1), ([2, 0, 1], 0)])
def test_reduce_family_opset18(tmp_path, op, axes, keepdims):
    inputs = [("x", reduce_input(op, 3, 4, 5), False)]
    inputs += [("axes", np.array(axes, np.int64), True)] if axes else []
    run(tmp_path, op, inputs, opset=18, keepdims=keepdims)


@pytest.mark.parametrize("op", [op for op in REDUCE_FAMILY if op != "ReduceSum"])
def test_reduce_family_axes_attribute(tmp_path, op):
    run(tmp_path, op, [("x", reduce_input(op, 2, 3, 4, 5), False)], opset=13, axes=[1, 3], keepdims=0)
    run(tmp_path, op, [("x", reduce_input(op, 2, 70), False)], opset=11, axes=[1])


@pytest.mark.parametrize("op", REDUCE_FAMILY)
def test_reduce_family_noop_with_empty_axes(tmp_path, op):
    """Reducing over no axes: each element's own reduction (|x| for L1, x*x for SumSquare, ...)."""
    run(tmp_path, op, [("x", reduce_input(op, 3, 4), False)], opset=18, noop_with_empty_axes=1)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_max_min_propagate_nan(tmp_path, op):
    """A slice holding NaN reduces to NaN wherever the NaN sits (as numpy; onnxruntime drops a NaN
    that is not first in its slice); infinities reduce as numbers do."""
    x = rand(4, 6)
    x[0, 3], x[1, 0], x[2, 5], x[3, 2] = np.nan, np.nan, np.inf, -np.inf
    model = single_op(op, [("x", x, False), ("axes", np.array([1], np.int64), True)], opset=18, keepdims=0)
    got = kiln_run(model, {"x": x}, tmp_path)[0]
    np.testing.assert_array_equal(got, (np.max if op == "ReduceMax" else np.min)(x, axis=1))


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims,last", [(0, 1, 0), (1, 0, 0), (-1, 1, 1), (2, 0, 1)])
def test_arg_max_min(tmp_path, op, axis, keepdims, last):
    x = RNG.integers(-3, 4, (3, 4, 5)).astype(np.float32)  # ties, so first and last index differ
    run(tmp_path, op, [("x", x, False)], axis=axis, keepdims=keepdims, select_last_index=last)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_arg_max_min_of_integers(tmp_path, op, dtype):
    run(tmp_path, op, [("x", ints(4, 70, dtype=dtype), False)], axis=1, keepdims=0)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_max_min_of_rows_with_nan(tmp_path, op, last):
    """A NaN wins only when it comes first in its slice (onnxruntime's scan), else it is passed over."""
    x = rand(5, 6)
    x[0, 0], x[1, 3], x[2, 5], x[3, 0], x[3, 1] = np.nan, np.nan, np.nan, -np.inf, np.nan
    x[4] = np.nan
    run(tmp_path, op, [("x", x, False)], axis=1, keepdims=0, select_last_index=last, specials=False)


def test_reduce_mean_opset18_axes_input(tmp_path):
    run(tmp_path, "ReduceMean", [("x", rand(2, 6, 4), False), ("axes", np.array([1], np.int64), True)],
        opset=18, keepdims=0)


@pytest.mark.parametrize("shape,attrs", [
    ((2, 7, 5, 6), dict(size=3)),
    ((1, 16, 4, 5), dict(size=5, alpha=0.3, beta=0.6, bias=2.0)),
    ((1, 3, 6, 2), dict(size=7, alpha=1e-3, beta=1.2)),
])
def test_lrn(tmp_path, shape, attrs):
    # No specials: onnxruntime slides its channel sum (adds the square entering the window, subtracts
    # the one leaving), so one NaN or infinity makes NaN of every later channel; see test_lrn_definition.
    run(tmp_path, "LRN", [("x", rand(*shape), False)], specials=False, **attrs)


def lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX's definition, in float64: the window is (size-1)//2 channels before, size//2 after."""
    x = x.astype(np.float64)
    pad = [(0, 0)] * x.ndim
    pad[1] = ((size - 1) // 2, size // 2)
    sq = np.pad(x * x, pad)
    with np.errstate(invalid="ignore"):
        return (x / (bias + alpha / size * sum(sq[:, k:k + x.shape[1]] for k in range(size))) ** beta
                ).astype(np.float32)


@pytest.mark.parametrize("size,shape", [(2, (2, 6, 5)), (4, (1, 5, 2, 3, 2)), (3, (1, 9, 4, 4))])
def test_lrn_definition(tmp_path, size, shape):
    """What onnxruntime does not take (even sizes, inputs not 4-D), and NaN and infinities, which reach
    only the windows holding them, against ONNX's definition."""
    x = rand(*shape)
    x.reshape(-1)[[0, 7, 40]] = [np.nan, np.inf, -np.inf]
    model = single_op("LRN", [("x", x, False)], size=size, alpha=0.2, beta=0.9, bias=1.5)
    got = kiln_run(model, {"x": x}, tmp_path)[0]
    np.testing.assert_allclose(got, lrn_reference(x, size, 0.2, 0.9, 1.5), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("axis,pshape", [(-1, (16,)), (-2, (5, 16)), (1, (5, 16))])
def test_layer_norm(tmp_path, axis, pshape):
    run(tmp_path, "LayerNormalization", [("x", rand(3, 5, 16), False), ("s", rand(*pshape), True),
                                         ("b", rand(*pshape), True)], axis=axis, epsilon=1e-3)


@pytest.mark.parametrize("axis", [-3, 1, 2])
def test_layer_norm_mean_and_inv_std_dev_outputs(tmp_path, axis):
    run(tmp_path, "LayerNormalization", [("x", rand(3, 5, 16), False), ("s", rand(16), True)], n_out=3,
        axis=axis, epsilon=1e-3)


def test_layer_norm_no_bias(tmp_path):
    run(tmp_path, "LayerNormalization", [("x", rand(2, 33), False), ("s", rand(33), True)])


def test_batch_norm(tmp_path):
    c = 6
    params = [("s", rand(c), True), ("b", rand(c), True), ("m", rand(c), True),
              ("v", rand(c, lo=0.1, hi=2), True)]
    run(tmp_path, "BatchNormalization", [("x", rand(2, c, 5, 4), False)] + params, epsilon=1e-3)


# -- data movement --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [[0, -1], [-1, 12], [2, 0, 2, 2]])
def test_reshape(tmp_path, shape):
    run(tmp_path, "Reshape", [("x", rand(2, 3, 4), False), ("s", np.array(shape, np.int64), True)])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_flatten(tmp_path, axis):
    run(tmp_path, "Flatten", [("x", rand(2, 3, 4), False)], axis=axis)


@pytest.mark.parametrize("perm", [[1, 0, 2], [2, 0, 1], [0, 2, 1], None])
def test_transpose(tmp_path, perm):
    attrs = {"perm": perm} if perm else {}
    run(tmp_path, "Transpose", [("x", rand(3, 4, 5), False)], **attrs)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(tmp_path, axis):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for s in shapes[1:]:
        s[axis] += 1
    run(tmp_path, "Concat", [(f"x{i}", rand(*s), i == 2) for i, s in enumerate(shapes)], axis=axis)


def test_split(tmp_path):
    run(tmp_path, "Split", [("x", rand(4, 9), False), ("s", np.array([2, 3, 4], np.int64), True)],
        n_out=3, axis=1)
    run(tmp_path, "Split", [("x", rand(6, 3), False)], n_out=2, axis=0)


def test_split_opset18_num_outputs(tmp_path):
    run(tmp_path, "Split", [("x", rand(7, 3), False)], n_out=3, opset=18, axis=0, num_outputs=3)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [0], [1]), ([0, 1], [100, -1], [1, 2], [2, 1]), ([-1], [-100], [2], [-1]),
    ([4, -3], [0, 2], [1, 2], [-2, -1]),
])
def test_slice(tmp_path, starts, ends, axes, steps):
    arr = lambda v: np.array(v, np.int64)  # noqa: E731
    run(tmp_path, "Slice", [("x", rand(4, 6, 5), False), ("st", arr(starts), True), ("en", arr(ends), True),
                            ("ax", arr(axes), True), ("sp", arr(steps), True)])


PADS = [[0, 2, 0, 3], [1, 1, 2, 0], [1, -1, 2, 1], [0, 0, 0, 0]]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", PADS)
def test_pad(tmp_path, mode, pads):
    inputs = [("x", rand(2, 3, 4), False), ("p", np.array([0] + pads[:2] + [0] + pads[2:], np.int64), True)]
    if mode == "constant":
        inputs.append(("v", np.array(1.5, np.float32), True))
    run(tmp_path, "Pad", inputs, mode=mode)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_opset19_axes_input(tmp_path, mode):
    """wrap (opset 19) pads more than the dimension holds; axes name the padded dimensions."""
    x = rand(2, 3, 4)
    pads = [1, 2, 2, 0] if mode == "reflect" else [5, 2, 6, 0]
    node = helper.make_node("Pad", ["x", "p", "", "a"], ["y"], name="the_node", mode=mode)
    inits = [numpy_helper.from_array(np.array(pads, np.int64), "p"),
             numpy_helper.from_array(np.array([-1, 1], np.int64), "a")]
    graph = helper.make_graph([node], "pad", [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_empty_tensor_value_info("y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 8
    check(model, {"x": x}, tmp_path, specials=True)


def test_pad_runtime_value_and_integers(tmp_path):
    run(tmp_path, "Pad", [("x", rand(3, 4), False), ("p", np.array([1, 0, 0, 2], np.int64), True),
                          ("v", np.array(-7.0, np.float32), False)])
    run(tmp_path, "Pad", [("x", ints(3, 4), False), ("p", np.array([0, 1, 2, 1], np.int64), True)], mode="edge")


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_pad_opset10_attributes(tmp_path, mode):
    run(tmp_path, "Pad", [("x", rand(1, 2, 4, 5), False)], opset=10, mode=mode, pads=[0, 0, 1, 2, 0, 0, 2, 1],
        **({"value": 0.5} if mode == "constant" else {}))


def test_gather_runtime_indices(tmp_path):
    idx = np.array([[0, 3], [-1, 2], [4, 4]], np.int64)
    run(tmp_path, "Gather", [("x", rand(5, 7), False), ("i", idx, False)], axis=0)


def test_gather_constant_indices(tmp_path):
    run(tmp_path, "Gather", [("x", rand(3, 6, 2), False), ("i", np.array([5, 0, -2], np.int64), True)],
        axis=1)


def test_gather_embedding(tmp_path):
    run(tmp_path, "Gather", [("w", rand(50, 16), True), ("ids", np.array([[3, 49, 0, 7]], np.int64), False)])


def test_unsqueeze_squeeze(tmp_path):
    run(tmp_path, "Unsqueeze", [("x", rand(3, 4), False), ("a", np.array([0, 3], np.int64), True)])
    run(tmp_path, "Squeeze", [("x", rand(3, 1, 4, 1), False), ("a", np.array([1], np.int64), True)])
    run(tmp_path, "Squeeze", [("x", rand(1, 3, 1), False)])


def test_expand(tmp_path):
    run(tmp_path, "Expand", [("x", rand(3, 1), False), ("s", np.array([2, 3, 4], np.int64), True)])


def test_identity_of_input(tmp_path):
    run(tmp_path, "Identity", [("x", rand(3, 4), False)])


# -- folded shape computations and constants ------------------------------------------------
def test_shape_constant_of_shape_folded(tmp_path):
    x = rand(2, 3, 4)
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("ConstantOfShape", ["s"], ["z"], name="zeros",
                              value=numpy_helper.from_array(np.array([1.5], np.float32))),
             helper.make_node("Constant", [], ["k"], name="k", value_float=2.0),
             helper.make_node("Mul", ["z", "k"], ["zk"], name="mul"),
             helper.make_node("Add", ["x", "zk"], ["y"], name="add"),
             helper.make_node("Gather", ["s", "one"], ["d1"], name="dim1", axis=0),
             helper.make_node("Unsqueeze", ["d1", "zero"], ["d1v"], name="unsq"),
             helper.make_node("Concat", ["minus1", "d1v"], ["shp"], name="cat", axis=0),
             helper.make_node("Reshape", ["y", "shp"], ["out"], name="reshape")]
    inits = [numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    graph = helper.make_graph(nodes, "shapes", [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_empty_tensor_value_info("out")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    check(model, {"x": x}, tmp_path)


@pytest.mark.parametrize("value", [np.array([7], np.int32), np.array([True]), np.array([2.5], np.float64)])
def test_constant_of_shape_keeps_its_value_dtype(tmp_path, value):
    """int32 and bool fill values stay int32/bool (the IR has them); float64 becomes f32."""
    x = rand(2, 3)
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("ConstantOfShape", ["s"], ["y"], name="fill", value=numpy_helper.from_array(value))]
    graph = helper.make_graph(nodes, "fill", [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    got, = kiln_run(model, {"x": x}, tmp_path)
    want = value.astype(np.float32) if value.dtype == np.float64 else value
    np.testing.assert_array_equal(got, np.full(x.shape, want[0], want.dtype))
    assert got.dtype == want.dtype


# -- every x86_64 feature level, on ops whose code depends on the vector width --------------
@pytest.mark.parametrize("variant", ["x86-64-v4", "x86-64-v3", "x86-64-v2"])
def test_variants(tmp_path, variant):
    cases = [
        single_op("Conv", [("x", rand(1, 5, 9, 9), False), ("w", rand(70, 5, 3, 3), True),
                           ("b", rand(70), True)], pads=[1, 1, 1, 1]),
        single_op("Conv", [("x", rand(1, 12, 9, 9), False), ("w", rand(12, 1, 3, 3), True)],
                  group=12, strides=[2, 2]),
        single_op("Conv", [("x", rand(1, 16, 5, 27), False), ("w", rand(37, 16, 3, 3), True)],
                  pads=[1, 1, 1, 1]),
        single_op("Conv", [("x", rand(1, 9, 12, 12), False), ("w", rand(11, 9, 3, 3), True),
                           ("b", rand(11), True)], pads=[1, 1, 1, 1]),
        single_op("MatMul", [("a", rand(2, 13, 19), False), ("b", rand(2, 19, 37), False)]),
        single_op("Gemm", [("a", rand(7, 33), False), ("b", rand(33, 21), True), ("c", rand(21), True)]),
        single_op("Softmax", [("x", rand(5, 23), False)]),
        single_op("Erf", [("x", rand(3, 29), False)]),
        single_op("LayerNormalization", [("x", rand(3, 21), False), ("s", rand(21), True)]),
    ]
    for i, model in enumerate(cases):
        feeds = {v.name: rand(*[d.dim_value for d in v.type.tensor_type.shape.dim])
                 for v in model.graph.input}
        sub = tmp_path / str(i)
        sub.mkdir()
        check(model, feeds, sub, variant)


# -- ops the frontend maps onto others (so every backend has them) ---------------------------------
@pytest.mark.parametrize("op", ["Sum", "Mean"])
@pytest.mark.parametrize("shapes", [[(3, 4)], [(3, 4), (4,)], [(2, 1, 5), (3, 1), (2, 3, 5)]])
def test_variadic_sum_and_mean(tmp_path, op, shapes):
    inputs = [(f"x{i}", rand(*s), False) for i, s in enumerate(shapes)]
    run(tmp_path, op, inputs)


def test_sum_propagates_nan_and_inf(tmp_path):
    a, b = rand(2, 8), rand(2, 8)
    a[0, :3] = [np.nan, np.inf, -np.inf]
    b[1, :2] = [np.nan, 1e38]
    run(tmp_path, "Sum", [("a", a, False), ("b", b, False)])


@pytest.mark.parametrize("opset", [7, 10, 12, 13])
def test_dropout_is_the_identity_with_its_mask_unread(tmp_path, opset):
    inputs = [("x", rand(2, 5), False)] + ([("ratio", np.array(0.3, np.float32), True)] if opset >= 12 else [])
    run(tmp_path, "Dropout", inputs, n_out=1, opset=opset)
    model = single_op("Dropout", inputs, 2, opset)
    model.graph.output.pop()  # exporters often leave the mask as an output nobody reads
    check(model, {"x": inputs[0][1]}, tmp_path)


@pytest.mark.parametrize("opset", [12, 13, 22])
def test_dropout_mask_read_in_inference_keeps_everything(tmp_path, opset):
    x = rand(2, 5)
    check(single_op("Dropout", [("x", x, False), ("ratio", np.array(0.3, np.float32), True)], 2, opset),
          {"x": x}, tmp_path)


def test_dropout_mask_read_before_opset_12_is_refused(tmp_path):
    with pytest.raises(CompileError, match="Dropout node the_node: its mask output y1 is read, and before opset 12"):
        kiln_run(single_op("Dropout", [("x", rand(2, 5), False)], 2, 10), {"x": rand(2, 5)}, tmp_path)


def test_dropout_in_training_mode_is_refused(tmp_path):
    model = single_op("Dropout", [("x", rand(2, 5), False), ("ratio", np.array(0.5, np.float32), True),
                                  ("training_mode", np.array(True), True)], 1, 13)
    with pytest.raises(CompileError, match="Dropout node the_node: training_mode must be a constant false"):
        kiln_run(model, {"x": rand(2, 5)}, tmp_path)


@pytest.mark.parametrize("attrs", [dict(kernel_shape=[2, 2], strides=[2, 2]), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])])
def test_maxpool_nan(tmp_path, attrs):
    """A window holding NaN pools to NaN, wherever the NaN sits in it (as numpy and PyTorch; onnxruntime
    drops a NaN in a window's first place), and infinities pool as numbers do."""
    x = rand(1, 2, 6, 6)
    x[0, 0, 0, 0], x[0, 0, 3, 4], x[0, 1, 2, 2], x[0, 1, 5, 5] = np.nan, np.nan, np.inf, -np.inf
    model = single_op("MaxPool", [("x", x, False)], **attrs)
    got = kiln_run(model, {"x": x}, tmp_path)[0]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf) if "pads" in attrs else x
    k, s = attrs["kernel_shape"][0], attrs.get("strides", [1, 1])[0]
    n = (padded.shape[2] - k) // s + 1
    want = np.array([[[[padded[0, c, i * s:i * s + k, j * s:j * s + k].max() for j in range(n)] for i in range(n)]
                      for c in range(2)]], np.float32)
    np.testing.assert_array_equal(got, want)


def test_nan_through_a_cnn(tmp_path):
    """The mnist case: a NaN image gives NaN scores (it printed class 1 with 0.111), as onnxruntime."""
    from onnx_models import mnist_cnn
    x = rand(1, 1, 28, 28)
    x[0, 0, 10, 10] = np.nan
    check(mnist_cnn(), {"input": x}, tmp_path)
    out = kiln_run(mnist_cnn(), {"input": np.full((1, 1, 28, 28), np.nan, np.float32)}, tmp_path)[0]
    assert np.isnan(out).all()


# -- indexing ops and the loss functions (onnx's function bodies) ---------------------------
def _indices(high: int, *shape: int, dtype=np.int64) -> np.ndarray:
    """Indices in [-high, high), negative ones counting from the end."""
    return RNG.integers(-high, high, shape).astype(dtype)


@pytest.mark.parametrize("data,idx,axis", [
    (rand(3, 4), _indices(3, 5, 4), 0),
    (rand(2, 5, 3), _indices(5, 2, 7, 3, dtype=np.int32), 1),
    (np.arange(24, dtype=np.int64).reshape(2, 3, 4), _indices(4, 2, 2, 6), -1),
])
def test_gather_elements(tmp_path, data, idx, axis):
    run(tmp_path, "GatherElements", [("x", data, False), ("i", idx, False)], axis=axis,
        specials=data.dtype == np.float32)


@pytest.mark.parametrize("data,idx,batch_dims", [
    (rand(4, 5, 3), np.stack([_indices(4, 2, 3), _indices(5, 2, 3)], -1), 0),
    (rand(4, 5), _indices(4, 6, 1), 0),
    (rand(2, 4, 5, 3), np.stack([_indices(4, 2, 6), _indices(5, 2, 6)], -1), 1),
    (np.arange(60, dtype=np.int64).reshape(2, 3, 10), _indices(10, 2, 3, 4, 1), 2),
])
def test_gather_nd(tmp_path, data, idx, batch_dims):
    run(tmp_path, "GatherND", [("x", data, False), ("i", idx, False)], batch_dims=batch_dims,
        specials=data.dtype == np.float32)


@pytest.mark.parametrize("idx,axis,values", [
    (_indices(6, 2, 3), -1, np.array([0, 1], np.float32)),
    (np.array([[1.7, 9.0, 2.0], [-2.2, 4.0, -1.0]], np.float32), 1, np.array([-3, 5], np.int64)),
    (np.array([0, 5, -5, -6, 7], np.int64), 0, np.array([2.5, -1.5], np.float32)),
])
def test_one_hot(tmp_path, idx, axis, values):
    """Out of range (>= depth or < -depth) is all off, and so is a float index that is not whole."""
    run(tmp_path, "OneHot", [("i", idx, False), ("d", np.array(5, np.int64), True), ("v", values, False)],
        axis=axis, specials=False)


LOSSES = [
    ("NegativeLogLikelihoodLoss", (3, 5), dict(reduction="mean")),
    ("NegativeLogLikelihoodLoss", (2, 4, 3, 2), dict(reduction="sum", ignore_index=1)),
    ("NegativeLogLikelihoodLoss", (2, 4, 6), dict(reduction="none", ignore_index=-1)),
    ("SoftmaxCrossEntropyLoss", (3, 5), dict(reduction="mean")),
    ("SoftmaxCrossEntropyLoss", (2, 4, 3), dict(reduction="none", ignore_index=2)),
    ("SoftmaxCrossEntropyLoss", (2, 4, 3, 2), dict(reduction="sum")),
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("op,shape,attrs", LOSSES)
def test_loss_functions(tmp_path, op, shape, attrs, weighted):
    target = RNG.integers(0, shape[1], (shape[0],) + shape[2:]).astype(np.int64)
    target.ravel()[:2] = attrs.get("ignore_index", 0)
    inputs = [("x", rand(*shape), False), ("t", target, False)] + ([("w", rand(shape[1], lo=0.1), True)]
                                                                    if weighted else [])
    run(tmp_path, op, inputs, opset=13, specials=False, **attrs)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("data,idx,axis", [
    (rand(4, 5), np.array([[1, -1, 0, 2, 3], [-3, 3, 3, 1, -2]], np.int64), 0),
    (np.arange(24, dtype=np.int64).reshape(2, 3, 4) - 9, np.array([[[0, -1], [2, 1], [3, 3]]] * 2, np.int64), 2),
])
def test_scatter_elements(tmp_path, data, idx, axis, reduction):
    """Duplicate indices (with a reduction) accumulate in index order; negative ones count from the end."""
    if reduction == "none":
        idx = idx[(slice(None),) * axis + (slice(0, 1),)]  # one update per line: no duplicates
    updates = (rand(*idx.shape) if data.dtype == np.float32 else RNG.integers(-5, 5, idx.shape).astype(data.dtype))
    run(tmp_path, "ScatterElements", [("x", data, False), ("i", idx, False), ("u", updates, False)], opset=18,
        axis=axis, reduction=reduction, specials=data.dtype == np.float32 and reduction in ("none", "add", "mul"))


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("data,idx", [
    (rand(4, 3, 2), np.array([[1], [-1], [1]], np.int64)),
    (np.arange(24, dtype=np.int64).reshape(4, 6) - 9, np.array([[[0, 5], [-1, 0]], [[3, -6], [0, 5]]], np.int64)),
])
def test_scatter_nd(tmp_path, data, idx, reduction):
    if reduction == "none":
        idx = idx[:2] if idx.ndim == 2 else idx[:1]
    shape = idx.shape[:-1] + data.shape[idx.shape[-1]:]
    updates = rand(*shape) if data.dtype == np.float32 else RNG.integers(-5, 5, shape).astype(data.dtype)
    run(tmp_path, "ScatterND", [("x", data, False), ("i", idx, False), ("u", updates, False)], opset=18,
        reduction=reduction, specials=data.dtype == np.float32 and reduction in ("none", "add", "mul"))


def test_scatter_with_too_many_updates_is_refused(tmp_path):
    model = single_op("ScatterElements", [("x", rand(600), False), ("i", np.arange(600, dtype=np.int64), False),
                                          ("u", rand(600), False)], 1, 18)
    with pytest.raises(CompileError, match=r"ScatterElements node the_node: 600 updates are not supported"):
        kiln_run(model, {"x": rand(600), "i": np.arange(600, dtype=np.int64), "u": rand(600)}, tmp_path)


# -- ConvTranspose (as a Conv of the zero-inserted input) -----------------------------------
CONV_TRANSPOSE_CASES = [
    # (x shape, w shape [C_in, C_out / group, k...], attrs): decoder and upsampler shapes
    ((1, 8, 5, 6), (8, 4, 4, 4), dict(strides=[2, 2], pads=[1, 1, 1, 1])),  # DCGAN-style 2x up
    ((2, 6, 4, 5), (6, 3, 2, 2), dict(strides=[2, 2])),  # U-Net up-convolution
    ((1, 4, 5, 5), (4, 2, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
    ((1, 4, 6, 5), (4, 3, 3, 3), dict(group=2, pads=[0, 1, 2, 0])),
    ((1, 3, 5, 4), (3, 2, 3, 2), dict(dilations=[2, 1], strides=[1, 3])),
    ((2, 5, 9), (5, 4, 5), dict(strides=[3], pads=[2, 1])),  # 1-D, e.g. a vocoder's upsampler
    ((1, 2, 4, 4), (2, 3, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 2, 4, 3), (2, 3, 3, 3), dict(strides=[3, 2], output_shape=[12, 8])),
    ((1, 16, 3, 3), (16, 1, 3, 3), dict(group=16, strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,attrs", CONV_TRANSPOSE_CASES)
def test_conv_transpose(tmp_path, xs, ws, attrs, bias):
    inputs = [("x", rand(*xs), False), ("w", rand(*ws, lo=-0.5, hi=0.5), True)]
    if bias:
        inputs.append(("b", rand(ws[1] * attrs.get("group", 1)), True))
    run(tmp_path, "ConvTranspose", inputs, **attrs)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_transpose_output_shape_as_onnx_defines(tmp_path, auto_pad):
    """output_shape past the full output: onnx's reference splits the negative total padding with
    floor division (SAME_UPPER extends the start); onnxruntime 1.31 extends the other end."""
    from onnx.reference import ReferenceEvaluator
    x = rand(1, 2, 4, 3)
    model = single_op("ConvTranspose", [("x", x, False), ("w", rand(2, 3, 3, 3), True)], 1, 17, strides=[3, 2],
                      output_shape=[13, 8], auto_pad=auto_pad)
    assert_close(kiln_run(model, {"x": x}, tmp_path)[0], ReferenceEvaluator(model).run(None, {"x": x})[0])


# -- Einsum (as Transpose, Reshape, Gather, ReduceSum and batched MatMul) -------------------
EINSUM_CASES = [
    ("ij->ji", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("...ii ->...i", [(3, 5, 5)]),
    ("i,i", [(5,), (5,)]),
    ("bij, bjk -> bik", [(5, 2, 3), (5, 3, 4)]),
    ("ij,jk", [(3, 4), (4, 5)]),  # implicit output: ik
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 8), (2, 3, 6, 8)]),  # attention scores
    ("bnd,dh->bnh", [(2, 7, 6), (6, 4)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 5, 4, 2)]),  # ellipsis dims broadcast
    ("...j,j", [(2, 3, 4), (4,)]),  # ellipsis in one term only, implicit output
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ii", [(4, 4)]),  # trace
    ("ijk,ikl,lm->jm", [(2, 3, 4), (2, 4, 5), (5, 3)]),
    ("i,j->ij", [(3,), (4,)]),
    ("->", [()]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES)
def test_einsum(tmp_path, equation, shapes):
    inputs = [(f"x{i}", rand(*s), False) for i, s in enumerate(shapes)]
    run(tmp_path, "Einsum", inputs, equation=equation, specials=len(shapes) == 1)


# -- Hardmax, Compress, LpPool --------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_hardmax(tmp_path, axis):
    """Ties go to the first maximum."""
    x = np.round(rand(3, 4, 5))
    run(tmp_path, "Hardmax", [("x", x, False)], axis=axis, specials=False)


@pytest.mark.parametrize("cond,axis", [([0, 1, 1], 0), ([1, 0, 1, 1], -1), ([0, 1, 0, 0, 1, 1, 0], None),
                                       ([1, 0, 1], 1)])
def test_compress(tmp_path, cond, axis):
    """A build-time condition; one shorter than the axis keeps nothing past its end."""
    attrs = {} if axis is None else dict(axis=axis)
    run(tmp_path, "Compress", [("x", rand(3, 4, 2), False), ("c", np.array(cond, np.bool_), True)], **attrs)


@pytest.mark.parametrize("p,xs,attrs", [
    (2, (1, 3, 6, 7), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    (1, (2, 2, 5, 5), dict(kernel_shape=[2, 3])),
    (3, (1, 2, 9), dict(kernel_shape=[4], strides=[2])),
    (2, (1, 2, 5, 6), dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER")),
])
def test_lp_pool(tmp_path, p, xs, attrs):
    run(tmp_path, "LpPool", [("x", rand(*xs), False)], opset=18, p=p, **attrs)


def test_hardmax_with_nan_as_onnx_defines(tmp_path):
    """A slice led by NaN is one-hot at the NaN (onnx's reference and kiln's ArgMax); onnxruntime
    1.31 leaves such a slice all zeros. (A NaN later in a slice is passed over, as kiln's ArgMax does.)"""
    from onnx.reference import ReferenceEvaluator
    x = rand(4, 5)
    x[0, 0], x[1, 0], x[2, 1], x[3, 0] = np.nan, np.nan, np.inf, -np.inf
    model = single_op("Hardmax", [("x", x, False)], 1, 13)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(kiln_run(model, {"x": x}, tmp_path)[0], want)


@pytest.mark.parametrize("op,inputs,attrs,message", [
    ("ConvTranspose", [("x", rand(1, 2, 3, 3, 3, 2), False), ("w", rand(2, 2, 2, 2, 2, 2), True)], {},
     "Conv node the_node: only 1-D, 2-D and 3-D convolutions are supported"),
    ("ConvTranspose", [("x", rand(1, 2, 3, 3), False), ("w", rand(2, 2, 2, 2), False)], {},
     "ConvTranspose node the_node: weights must be constant"),
    ("Compress", [("x", rand(3, 4), False), ("c", np.array([1, 0, 1], np.bool_), False)], dict(axis=0),
     "Compress node the_node: the condition must be known at build time"),
    ("Compress", [("x", rand(3, 4), False), ("c", np.array([0, 0], np.bool_), True)], dict(axis=0),
     "Compress node the_node: the condition keeps nothing"),
])
def test_indexing_and_linear_limits_are_one_line(tmp_path, op, inputs, attrs, message):
    model = single_op(op, inputs, 1, 17, **attrs)
    with pytest.raises(CompileError, match=message) as e:
        kiln_run(model, {n: a for n, a, init in inputs if not init}, tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mode,starts,axis", [("linear", [0, 3], -2), ("circular", [5, 2], -2),
                                              ("linear", None, 2), ("circular", [1, 4], 1)])
def test_tensor_scatter(tmp_path, mode, starts, axis):
    """A KV cache [batch, heads, max_seq, head] written at run-time positions per batch entry
    (onnx's reference: onnxruntime 1.31 has no TensorScatter yet)."""
    from onnx.reference import ReferenceEvaluator
    past = rand(2, 3, 6, 4) if axis != 1 else rand(2, 6, 4)
    upd_shape = list(past.shape)
    upd_shape[axis] = 3
    feeds = {"past": past, "upd": rand(*upd_shape)}
    inputs = [("past", past, False), ("upd", feeds["upd"], False)]
    if starts is not None:
        feeds["w"] = np.array(starts, np.int64)
        inputs.append(("w", feeds["w"], False))
    model = single_op("TensorScatter", inputs, 1, 24, mode=mode, axis=axis)
    np.testing.assert_array_equal(kiln_run(model, feeds, tmp_path)[0], ReferenceEvaluator(model).run(None, feeds)[0])


# -- RNN, GRU, LSTM (unrolled), CumSum/CumProd, TopK, If (folded) ---------------------------------
RECURRENT_CASES = {
    "lstm_peepholes_initial": ("LSTM", 5, 3, 4, 6, dict(initial=True, peepholes=True)),
    "lstm_bidirectional_lens_batch_first": ("LSTM", 5, 3, 4, 3, dict(
        direction="bidirectional", lens=[5, 2, 4], initial=True, layout=1, clip=0.8, input_forget=1)),
    "lstm_reverse_parameterized": ("LSTM", 4, 2, 3, 5, dict(
        direction="reverse", activations=["HardSigmoid", "LeakyRelu", "ScaledTanh"],
        activation_alpha=[0.3, 0.1, 1.5], activation_beta=[0.6, 0.7])),
    "lstm_only_y_h": ("LSTM", 3, 2, 4, 5, dict(outputs=(False, True, False), bias=False)),
    "gru_bidirectional_lens_linear_before_reset": ("GRU", 4, 3, 5, 4, dict(
        direction="bidirectional", lens=[1, 4, 3], initial=True, linear_before_reset=1)),
    "gru_reset_after_batch_first": ("GRU", 6, 2, 3, 4, dict(layout=1, activations=["Sigmoid", "Softsign"],
                                                          clip=1.5)),
    "rnn_bidirectional_activations": ("RNN", 4, 2, 3, 5, dict(
        direction="bidirectional", activations=["Relu", "Elu"], activation_alpha=[0.5], initial=True)),
    "rnn_lens_softplus": ("RNN", 5, 2, 3, 4, dict(lens=[3, 5], activations=["Softplus"], outputs=(True, False))),
    "rnn_affine_thresholded": ("RNN", 3, 2, 3, 4, dict(
        direction="bidirectional", activations=["Affine", "ThresholdedRelu"], activation_alpha=[0.5, 0.2],
        activation_beta=[0.1])),
}


def seq_first(model):
    """The layout-0 twin of a layout-1 (batch-first) recurrent model: onnxruntime runs only layout 0."""
    from onnx import numpy_helper as nh
    twin = type(model)()
    twin.CopyFrom(model)
    node = twin.graph.node[0]
    for a in node.attribute:
        if a.name == "layout":
            a.i = 0
    for i, init in enumerate(twin.graph.initializer):
        if init.name in ("initial_h", "initial_c"):
            twin.graph.initializer[i].CopyFrom(nh.from_array(nh.to_array(init).transpose(1, 0, 2), init.name))
    dims = twin.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value, dims[1].dim_value = dims[1].dim_value, dims[0].dim_value
    return twin


@pytest.mark.parametrize("case", sorted(RECURRENT_CASES))
def test_recurrent(tmp_path, case):
    """Against onnxruntime without NaN and infinities: its LSTM and GRU clamp gate inputs with
    min/max, which turns NaN into a bound (test_recurrent_propagates_nan has kiln's)."""
    from onnx_models import recurrent, run_onnxruntime
    op, seq, batch, size, hidden, attrs = RECURRENT_CASES[case]
    model, feeds = recurrent(op, seq, batch, size, hidden, **attrs)
    if not attrs.get("layout"):
        check(model, feeds, tmp_path)
        return
    got = kiln_run(model, feeds, tmp_path)
    ref = run_onnxruntime(seq_first(model), {"X": feeds["X"].transpose(1, 0, 2)})
    for g, r in zip(got, ref):
        assert_close(g, r.transpose((2, 0, 1, 3) if r.ndim == 4 else (1, 0, 2)))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_recurrent_propagates_nan(tmp_path, op):
    """A NaN input makes its batch entry NaN from that step on (both directions) and no other."""
    from onnx_models import recurrent
    model, feeds = recurrent(op, 4, 3, 2, 3, direction="bidirectional")
    feeds["X"][2, 1, 0] = np.nan
    y = kiln_run(model, feeds, tmp_path)[0]
    assert np.isnan(y[2:, 0, 1]).all() and np.isnan(y[:3, 1, 1]).all()
    assert not np.isnan(y[:2, 0, 1]).any() and not np.isnan(y[3:, 1, 1]).any()
    assert not np.isnan(y[:, :, [0, 2]]).any()


def test_recurrent_with_runtime_sequence_lens_is_refused(tmp_path):
    from onnx_models import recurrent
    model, feeds = recurrent("GRU", 3, 2, 3, 4, lens=[3, 1])
    model.graph.initializer.pop()  # sequence_lens becomes an input
    model.graph.input.append(helper.make_tensor_value_info("sequence_lens", 6, [2]))
    with pytest.raises(CompileError, match="GRU node the_node: sequence_lens must be known at build time"):
        kiln_run(model, dict(feeds, sequence_lens=np.array([3, 1], np.int32)), tmp_path)


@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("dtype,axis", [(np.float32, 1), (np.int64, -1), (np.float32, 0)])
def test_cumulative(tmp_path, op, exclusive, reverse, dtype, axis):
    x = rand(5, 11, lo=0.5, hi=1.5) if op == "CumProd" else rand(5, 11)
    x = ints(5, 11, dtype=dtype) if dtype == np.int64 else x
    run(tmp_path, op, [("x", x, False), ("axis", np.array(axis, np.int64), True)], opset=26 if op == "CumProd" else 17,
        exclusive=exclusive, reverse=reverse)


@pytest.mark.parametrize("shape,axis,k,largest", [((3, 9), -1, 3, 1), ((4, 6, 5), 1, 6, 0), ((2, 7, 3), 0, 1, 1),
                                                  ((1, 40), 1, 12, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_top_k(tmp_path, shape, axis, k, largest, dtype):
    """Many ties (small integers): they go to the lower index. No NaN: onnxruntime's order around
    NaN depends on its sort algorithm (test_top_k_nan has kiln's)."""
    x = ints(*shape, dtype=dtype) if dtype == np.int64 else ints(*shape).astype(np.float32)
    if dtype == np.float32:
        x.reshape(-1)[::5], x.reshape(-1)[2::7] = np.inf, -np.inf
    run(tmp_path, "TopK", [("x", x, False), ("k", np.array([k], np.int64), True)], n_out=2, specials=False,
        axis=axis, largest=largest)


@pytest.mark.parametrize("largest", [1, 0])
def test_top_k_nan(tmp_path, largest):
    """NaN ranks above every number, +inf included (numpy's sort, torch.topk), ties to the lower index."""
    x = np.array([[1, np.nan, 3, np.inf, -np.inf, 3, np.nan, 0, -np.inf]], np.float32)
    model = single_op("TopK", [("x", x, False), ("k", np.array([6], np.int64), True)], 2, largest=largest)
    values, indices = kiln_run(model, {"x": x}, tmp_path)
    ascending = sorted(range(9), key=lambda i: (np.isnan(x[0, i]), 0 if np.isnan(x[0, i]) else x[0, i], i))
    descending = sorted(range(9), key=lambda i: (not np.isnan(x[0, i]), 0 if np.isnan(x[0, i]) else -x[0, i], i))
    want = (descending if largest else ascending)[:6]
    np.testing.assert_array_equal(indices[0], want)
    np.testing.assert_array_equal(values[0], x[0, want])


@pytest.mark.parametrize("width", [4, 3])
def test_if_folds_on_a_shape(tmp_path, width):
    from onnx_models import if_on_shape
    x = rand(2, width)
    check(if_on_shape(width), {"x": x}, tmp_path)


def test_if_on_a_runtime_condition_is_refused(tmp_path):
    from onnx_models import if_on_shape
    with pytest.raises(CompileError, match=r"^If node the_if \(opset 17\): a condition must be known at build time; "
                                           r"flag is only known at run time"):
        kiln_run(if_on_shape(4, runtime_condition=True), {}, tmp_path)


@pytest.mark.parametrize("trips,stop_at", [(3, None), (1, None), (6, 2)])
def test_loop_unrolled(tmp_path, trips, stop_at):
    from onnx_models import loop_model
    check(loop_model(trips, stop_at), {"x": rand(2, 3)}, tmp_path)


@pytest.mark.parametrize("reverse_in,out_axis,reverse_out", [(0, 0, 0), (1, 1, 0), (0, -1, 1)])
def test_scan_unrolled(tmp_path, reverse_in, out_axis, reverse_out):
    from onnx_models import scan_model
    check(scan_model(reverse_in, out_axis, reverse_out), {"s0": rand(2, 3), "x": rand(2, 5, 3)}, tmp_path)


def test_loop_on_a_runtime_trip_count_is_refused(tmp_path):
    from onnx_models import loop_model
    model = loop_model()
    model.graph.initializer.pop()
    model.graph.input.append(helper.make_tensor_value_info("m", 7, []))
    with pytest.raises(CompileError, match=r"^Loop node the_loop \(opset 17\): a trip count must be known at build "
                                           r"time; m is only known at run time"):
        kiln_run(model, {}, tmp_path)


# -- Resize ---------------------------------------------------------------------------------
def _scales(*s: float) -> list:
    return [("roi", np.array([], np.float32), True), ("scales", np.array(s, np.float32), True)]


def _sizes(*s: int, roi: tuple = ()) -> list:
    return [("roi", np.array(roi, np.float32), True), ("scales", np.array([], np.float32), True),
            ("sizes", np.array(s, np.int64), True)]


# case -> (extra inputs, attrs, opset). Not align_corners or half_pixel_symmetric with scales whose
# output size is fractional: onnxruntime uses the rounded size there, onnx's reference (which kiln
# follows, and the conformance cases check) the fractional one.
RESIZE = {
    "nearest_half_pixel": (_scales(1, 1, 2.5, 1.5), dict(mode="nearest"), 13),
    "nearest_ceil_asymmetric": (_scales(1, 1, 0.6, 1.7), dict(nearest_mode="ceil",
                                                               coordinate_transformation_mode="asymmetric"), 13),
    "nearest_floor_align_corners": (_sizes(1, 2, 8, 3),
                                    dict(nearest_mode="floor", coordinate_transformation_mode="align_corners"), 13),
    "nearest_prefer_ceil_pytorch": (_sizes(1, 2, 3, 11), dict(nearest_mode="round_prefer_ceil",
                                                              coordinate_transformation_mode="pytorch_half_pixel"),
                                    13),
    "linear_up": (_scales(1, 1, 2, 2), dict(mode="linear"), 13),
    "linear_down_pytorch": (_scales(1, 1, 0.6, 0.8), dict(mode="linear",
                                                          coordinate_transformation_mode="pytorch_half_pixel"), 13),
    "linear_align_corners": (_sizes(1, 2, 9, 4), dict(mode="linear", coordinate_transformation_mode="align_corners"),
                             13),
    "linear_asymmetric": (_scales(1, 1, 1.7, 0.5), dict(mode="linear", coordinate_transformation_mode="asymmetric"),
                          13),
    "linear_half_pixel_symmetric": (_sizes(1, 2, 8, 11),
                                    dict(mode="linear", coordinate_transformation_mode="half_pixel_symmetric"), 19),
    "cubic_up": (_scales(1, 1, 2, 3), dict(mode="cubic"), 13),
    "cubic_exclude_outside": (_scales(1, 1, 2, 0.6), dict(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1), 13),
    "cubic_align_corners": (_sizes(1, 2, 3, 10), dict(mode="cubic", coordinate_transformation_mode="align_corners"),
                            13),
    "crop_and_resize": (_sizes(1, 2, 7, 5, roi=(0, 0, 0.4, 0.6, 1, 1, 1.2, 0.7)),
                        dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
                             extrapolation_value=10.0), 13),
    "linear_antialias": (_sizes(1, 2, 3, 4), dict(mode="linear", antialias=1), 18),
    "cubic_antialias": (_sizes(1, 2, 2, 3), dict(mode="cubic", antialias=1), 18),
    "axes_not_larger": (_sizes(9, 9)[:2] + [("sizes", np.array([9, 9], np.int64), True)],
                        dict(mode="linear", axes=[3, 2], keep_aspect_ratio_policy="not_larger"), 18),
    "axes_not_smaller": (_sizes(9)[:2] + [("sizes", np.array([9], np.int64), True)],
                         dict(axes=[2], keep_aspect_ratio_policy="not_smaller"), 18),
}


@pytest.mark.parametrize("case", sorted(RESIZE))
def test_resize(tmp_path, case):
    """NaN and infinities only through nearest: onnxruntime's linear and cubic skip or read other
    taps of weight (almost) 0 than onnx's reference, so 0 * inf differs between the two oracles."""
    extra, attrs, opset = RESIZE[case]
    run(tmp_path, "Resize", [("x", rand(1, 2, 5, 7), False)] + extra, opset=opset,
        specials=attrs.get("mode", "nearest") == "nearest", **attrs)


def test_resize_nearest_of_integers(tmp_path):
    x = np.arange(24, dtype=np.int32).reshape(1, 2, 3, 4)
    run(tmp_path, "Resize", [("x", x, False)] + _scales(1, 1, 2, 1.5), opset=13, specials=False)


def test_resize_with_runtime_scales_is_one_line(tmp_path):
    model = single_op("Resize", [("x", rand(1, 2, 5, 7), False), ("roi", np.array([], np.float32), True),
                                 ("scales", np.array([1, 1, 2, 2], np.float32), False)], opset=13)
    with pytest.raises(CompileError, match=r"^Resize node the_node: scales must be known at build time"):
        kiln_run(model, {"x": rand(1, 2, 5, 7), "scales": np.array([1, 1, 2, 2], np.float32)}, tmp_path)


def test_resize_as_exporters_emit_it(tmp_path):
    """A detector-like neck: Resize by constant scales (a Constant node), and Resize to another
    feature map's size from Shape -> Slice -> Concat, both folded at build time."""
    b = Builder(5)
    small = b.conv("x", 3, 8, 3, stride=2)
    up = b.op("Resize", ["", "", b.op("Constant", [], value=numpy_helper.from_array(
        np.array([1, 1, 2, 2], np.float32)))], mode="nearest")
    b.nodes[-1].input[0] = small
    hw = b.op("Slice", [b.op("Shape", ["x"]), b.const(np.array([2], np.int64)), b.const(np.array([4], np.int64))])
    sizes = b.op("Concat", [b.const(np.array([1, 8], np.int64)), hw], axis=0)
    full = b.op("Resize", [b.op("Relu", [up]), "", "", sizes], mode="linear")
    model = b.model([("x", F, [1, 3, 16, 20])], [(full, F, None)], opset=13)
    check(model, {"x": rand(1, 3, 16, 20)}, tmp_path)


@pytest.mark.parametrize("theta,size", [((2, 2, 3), (2, 3, 5, 7)), ((1, 3, 4), (1, 2, 3, 4, 5))])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_affine_grid(tmp_path, theta, size, align_corners):
    """Not with NaN and infinities: the base grid holds zeros (0 * inf), summed as MatMul sums."""
    run(tmp_path, "AffineGrid", [("theta", rand(*theta), False), ("size", np.array(size, np.int64), True)],
        opset=20, specials=False, align_corners=align_corners)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_of_a_constant_folds(tmp_path, mode):
    """A Resize of an initializer is evaluated at build time (numpy, float64 sums)."""
    b = Builder(6)
    scales = b.const(np.array([1, 1, 2, 1.5], np.float32))
    up = b.op("Resize", [b.const(rand(1, 2, 3, 4)), "", scales], mode=mode)
    y = b.op("Add", ["x", up])
    check(b.model([("x", F, [1, 2, 6, 6])], [(y, F, None)], opset=13), {"x": rand(1, 2, 6, 6)}, tmp_path)


# Not bicubic with border padding: onnxruntime clamps cubic taps unlike onnx's reference
# (test_grid_sample_cubic_border compares that one with the reference).
@pytest.mark.parametrize("mode,opset,padding", [
    (mode, opset, padding) for mode, opset in [("bilinear", 16), ("nearest", 16), ("bicubic", 16), ("linear", 20)]
    for padding in ["zeros", "border", "reflection"] if (mode, padding) != ("bicubic", "border")])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample(tmp_path, mode, opset, padding, align_corners):
    """A grid reaching past the input's edges; not with NaN and infinities (a NaN grid has no index)."""
    run(tmp_path, "GridSample", [("x", rand(2, 3, 5, 6), False), ("grid", rand(2, 4, 7, 2, lo=-1.6, hi=1.6), False)],
        opset=opset, specials=False, mode=mode, padding_mode=padding, align_corners=align_corners)


@pytest.mark.parametrize("mode,padding", [("linear", "zeros"), ("nearest", "reflection"), ("linear", "border")])
def test_grid_sample_volumetric(tmp_path, mode, padding):
    grid = rand(1, 2, 3, 4, 3, lo=-1.4, hi=1.4)
    run(tmp_path, "GridSample", [("x", rand(1, 2, 3, 4, 5), False), ("grid", grid, False)], opset=20,
        specials=False, mode=mode, padding_mode=padding)


@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_cubic_border(tmp_path, align_corners):
    """Against onnx's reference: onnxruntime's cubic taps with border padding read other pixels."""
    from onnx.reference import ReferenceEvaluator
    x, grid = rand(2, 3, 5, 6), rand(2, 4, 7, 2, lo=-1.6, hi=1.6)
    model = single_op("GridSample", [("x", x, False), ("grid", grid, False)], opset=20, mode="cubic",
                      padding_mode="border", align_corners=align_corners)
    want = ReferenceEvaluator(model).run(None, {"x": x, "grid": grid})[0]
    assert_close(kiln_run(model, {"x": x, "grid": grid}, tmp_path)[0], want)


def test_grid_sample_unknown_padding_is_one_line(tmp_path):
    model = single_op("GridSample", [("x", rand(1, 1, 3, 3), False), ("grid", rand(1, 2, 2, 2), False)],
                      opset=16, padding_mode="wrap")
    with pytest.raises(CompileError, match=r"^GridSample node the_node: unsupported padding_mode 'wrap'"):
        kiln_run(model, {"x": rand(1, 1, 3, 3), "grid": rand(1, 2, 2, 2)}, tmp_path)


# -- Window functions and CenterCropPad (onnx's function bodies) ----------------------------------
@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("size,attrs", [(10, {}), (7, dict(periodic=0)), (1, dict(periodic=0)),
                                        (5, dict(output_datatype=helper.np_dtype_to_tensor_dtype(np.dtype("int64"))))])
def test_window_functions(tmp_path, op, size, attrs):
    """The size is an initializer, so the window is a build-time constant; a model with no inputs."""
    run(tmp_path, op, [("n", np.array(size, np.int64), True)], specials=False, **attrs)


def test_window_function_of_unsupported_type_is_one_line(tmp_path):
    model = single_op("HannWindow", [("n", np.array(6, np.int64), True)],
                      output_datatype=helper.np_dtype_to_tensor_dtype(np.dtype("float64")))
    with pytest.raises(CompileError, match=r"^Cast node the_node/Cast: unsupported target type DOUBLE$"):
        kiln_run(model, {}, tmp_path)


@pytest.mark.parametrize("shape,target,axes", [
    ((5, 7, 3), [3, 9, 3], None),
    ((4, 6, 8), [6, 3], [-2, -1]),
    ((3, 10, 9), [7, 12], [1, 2]),
    ((2, 5, 4), [2, 4], [0, 2]),
])
def test_center_crop_pad(tmp_path, shape, target, axes):
    """Crops or zero-pads each axis to the target around its centre (odd leftovers go to the end)."""
    attrs = {} if axes is None else dict(axes=axes)
    run(tmp_path, "CenterCropPad", [("x", rand(*shape), False), ("s", np.array(target, np.int64), True)],
        opset=18, **attrs)


# -- 3-D pooling (separated into 2-D pools) -------------------------------------------------------
POOL_3D = [
    dict(kernel_shape=[2, 3, 3], strides=[2, 2, 2], pads=[1, 1, 0, 0, 1, 1]),
    dict(kernel_shape=[3, 2, 2], dilations=[2, 1, 2], ceil_mode=1, strides=[2, 1, 3]),
    dict(kernel_shape=[3, 3, 3], auto_pad="SAME_LOWER", strides=[1, 2, 2]),
    dict(kernel_shape=[2, 2, 3], auto_pad="VALID"),
    dict(kernel_shape=[3, 3, 2], pads=[1, 0, 1, 1, 2, 0], ceil_mode=1, strides=[2, 2, 2]),
]


@pytest.mark.parametrize("attrs", POOL_3D)
@pytest.mark.parametrize("op,extra", [("MaxPool", {}), ("AveragePool", dict(count_include_pad=0)),
                                      ("AveragePool", dict(count_include_pad=1)), ("LpPool", dict(p=2))])
def test_pool_3d(tmp_path, op, extra, attrs):
    """onnxruntime's MaxPool drops a NaN in a window's first place (see test_maxpool_nan): no specials."""
    run(tmp_path, op, [("x", rand(2, 3, 7, 8, 9), False)], opset=19, specials=op != "MaxPool", **attrs, **extra)


def test_maxpool_3d_nan(tmp_path):
    x = rand(1, 2, 4, 4, 4)
    x[0, 0, 0, 0, 0], x[0, 0, 3, 2, 1], x[0, 1, 1, 2, 2], x[0, 1, 3, 3, 3] = np.nan, np.nan, np.inf, -np.inf
    got = kiln_run(single_op("MaxPool", [("x", x, False)], kernel_shape=[2, 2, 2], strides=[2, 2, 2]),
                   {"x": x}, tmp_path)[0]
    np.testing.assert_array_equal(got, x.reshape(1, 2, 2, 2, 2, 2, 2, 2).max(axis=(3, 5, 7)))


# -- Col2Im -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,image,block,attrs", [
    (2, [5, 5], [2, 2], {}),
    (1, [6, 7], [3, 2], dict(strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2])),
    (3, [4, 5], [2, 3], dict(dilations=[2, 1], pads=[1, 1, 1, 1])),
])
def test_col2im(tmp_path, channels, image, block, attrs):
    """Overlapping blocks add up; entries that land in the padding are dropped."""
    nd = len(image)
    pads, strides = attrs.get("pads", [0] * 2 * nd), attrs.get("strides", [1] * nd)
    dil = attrs.get("dilations", [1] * nd)
    columns = int(np.prod([(i + pads[d] + pads[nd + d] - dil[d] * (k - 1) - 1) // strides[d] + 1
                           for d, (i, k) in enumerate(zip(image, block))]))
    run(tmp_path, "Col2Im", [("x", rand(2, channels * int(np.prod(block)), columns), False),
                             ("i", np.array(image, np.int64), True), ("b", np.array(block, np.int64), True)],
        opset=18, **attrs)


def test_col2im_of_a_computed_shape_is_one_line(tmp_path):
    model = single_op("Col2Im", [("x", rand(1, 4, 16), False), ("i", np.array([5, 5], np.int64), False),
                                 ("b", np.array([2, 2], np.int64), True)], opset=18)
    with pytest.raises(CompileError,
                       match=r"^Col2Im node the_node: image_shape must be known at build time; i is computed$"):
        kiln_run(model, {"x": rand(1, 4, 16), "i": np.array([5, 5], np.int64)}, tmp_path)
# -- Attention's windows and valid key lengths, RotaryEmbedding, Swish, SwiGLU -----------------
def check_reference(model, feeds: dict, tmp_path, specials: bool = False, run=kiln_run) -> None:
    """kiln against onnx's reference implementation (for ops or attributes onnxruntime 1.31 lacks),
    on the feeds and, with `specials`, on them with NaN and infinities (not for Attention, as its
    onnxruntime tests: a NaN under a masked key is 0 or NaN depending on where the mask applies)."""
    from onnx.reference import ReferenceEvaluator
    from onnx_models import with_specials
    for case in [feeds, with_specials(feeds)] if specials else [feeds]:
        with np.errstate(all="ignore"):
            want = ReferenceEvaluator(model).run(None, case)
        got = run(model, case, tmp_path)
        assert len(got) == len(want)
        for g, ref in zip(got, want):
            assert_close(g, ref)


@pytest.mark.parametrize("attrs", [dict(left_window_size=1), dict(left_window_size=2, right_window_size=1),
                                   dict(left_window_size=1, is_causal=1), dict(right_window_size=0, scale=0.5)])
@pytest.mark.parametrize("past", [False, True])
def test_attention_sliding_window(tmp_path, attrs, past):
    """Opset 25 (onnxruntime 1.31 has no Attention-25): against onnx's reference."""
    feeds = {"q": rand(2, 4, 3, 4), "k": rand(2, 2, 5, 4), "v": rand(2, 2, 5, 3)}
    names = ["q", "k", "v", "m"] + (["pk", "pv"] if past else [])
    if past:
        feeds |= {"pk": rand(2, 2, 2, 4), "pv": rand(2, 2, 2, 3)}
    mask = ("m", rand(3, 5 + 2 * past), True)
    model = single_op("Attention", [(n, feeds[n], False) if n != "m" else mask for n in names], 4, 25,
                      qk_matmul_output_mode=2, **attrs)
    check_reference(model, feeds, tmp_path)


@pytest.mark.parametrize("attrs", [{}, dict(is_causal=1), dict(is_causal=1, q_num_heads=4, kv_num_heads=2)])
def test_attention_valid_key_lengths(tmp_path, attrs):
    """nonpad_kv_seqlen (opset 24): keys past each entry's length are masked and a causal mask is
    aligned to it; entry 1 has fewer keys than queries, so its first rows are masked entirely."""
    three_d = "q_num_heads" in attrs
    q, k, v = ((rand(3, 2, 8), rand(3, 6, 4), rand(3, 6, 4)) if three_d else
               (rand(3, 2, 2, 4), rand(3, 2, 6, 4), rand(3, 2, 6, 4)))
    lengths = np.array([6, 1, 4], np.int64)
    model = single_op("Attention", [("q", q, False), ("k", k, False), ("v", v, False), ("lengths", lengths, True)],
                      4, 24, qk_matmul_output_mode=3, **attrs)
    model.graph.node[0].input[:] = ["q", "k", "v", "", "", "", "lengths"]
    check_reference(model, {"q": q, "k": k, "v": v}, tmp_path)
    if not attrs.get("is_causal"):  # onnxruntime 1.31 agrees where its causal alignment is the same
        check(model, {"q": q, "k": k, "v": v}, tmp_path)


def test_attention_window_with_lengths(tmp_path):
    q, k, v = rand(2, 2, 3, 4), rand(2, 2, 6, 4), rand(2, 2, 6, 4)
    model = single_op("Attention", [("q", q, False), ("k", k, False), ("v", v, False),
                                    ("lengths", np.array([5, 3], np.int64), True)], 1, 25,
                      is_causal=1, left_window_size=2)
    model.graph.node[0].input[:] = ["q", "k", "v", "", "", "", "lengths"]
    check_reference(model, {"q": q, "k": k, "v": v}, tmp_path)


@pytest.mark.parametrize("shape,attrs", [((2, 3, 4, 8), {}), ((2, 3, 4, 8), dict(interleaved=1)),
                                         ((2, 4, 12), dict(num_heads=3, rotary_embedding_dim=2)),
                                         ((2, 3, 4, 8), dict(interleaved=1, rotary_embedding_dim=4))])
@pytest.mark.parametrize("positions", [False, True])
def test_rotary_embedding(tmp_path, shape, attrs, positions):
    """Against onnxruntime (it has RotaryEmbedding-23)."""
    x = rand(*shape)
    seq = shape[2] if len(shape) == 4 else shape[1]
    half = attrs.get("rotary_embedding_dim", shape[-1] if len(shape) == 4 else 4) // 2
    cache = (7, half) if positions else (2, seq, half)
    inputs = [("x", x, False), ("cos", rand(*cache), False), ("sin", rand(*cache), False)]
    if positions:
        inputs.append(("pos", np.array([[0, 2, 4, 6][:seq], [6, 5, 1, 0][:seq]], np.int64), True))
    run(tmp_path, "RotaryEmbedding", inputs, opset=23, **attrs)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_swish(tmp_path, alpha):
    run(tmp_path, "Swish", [("x", rand(3, 17, lo=-8, hi=8), False)], opset=24, alpha=alpha)


@pytest.mark.parametrize("alpha", [1.0, 1.7])
def test_swiglu(tmp_path, alpha):
    """Opset 28 (onnxruntime 1.31 has no SwiGLU): against onnx's reference."""
    a, b = rand(2, 3, 8, lo=-8, hi=8), rand(2, 3, 8)
    model = single_op("SwiGLU", [("a", a, False), ("b", b, False)], 1, 28, alpha=alpha)
    check_reference(model, {"a": a, "b": b}, tmp_path, specials=True)


# -- MaxPool's Indices, MaxUnpool, ReverseSequence, BitCast, bool ReduceMax/Min, 3-D Conv --------------
MAXPOOL_INDICES_CASES = {
    "pads": ((2, 3, 7, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "column_major": ((1, 2, 7, 8), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], storage_order=1)),
    "dilated_ceil": ((1, 2, 9, 10), dict(kernel_shape=[2, 3], dilations=[2, 1], strides=[2, 2], ceil_mode=1)),
    "same_upper": ((1, 3, 6, 5), dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2])),
    "1d": ((2, 3, 11), dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
    "3d": ((1, 2, 5, 6, 4), dict(kernel_shape=[2, 3, 2], strides=[2, 2, 1], pads=[0, 1, 1, 1, 1, 0])),
    "3d_column_major": ((1, 2, 4, 5, 6), dict(kernel_shape=[2, 2, 3], strides=[2, 2, 2], storage_order=1)),
}


@pytest.mark.parametrize("case", sorted(MAXPOOL_INDICES_CASES))
def test_maxpool_indices(tmp_path, case):
    """No NaN or infinities: onnxruntime starts each window's maximum at the lowest finite float."""
    shape, attrs = MAXPOOL_INDICES_CASES[case]
    run(tmp_path, "MaxPool", [("x", rand(*shape), False)], n_out=2, specials=False, **attrs)


def unpool_indices(pooled: tuple[int, ...], out: tuple[int, ...], kernel: list[int], strides: list[int],
                   pads: list[int]) -> np.ndarray:
    """Flat indices into `out` of one random position inside each pooling window, as MaxPool's."""
    nd = len(kernel)
    idx = np.zeros(pooled, np.int64)
    for pos in np.ndindex(*pooled):
        lo = [max(p * s - b, 0) for p, s, b in zip(pos[2:], strides, pads[:nd])]
        hi = [min(p * s - b + k, o) for p, s, b, k, o in zip(pos[2:], strides, pads[:nd], kernel, out[2:])]
        spot = tuple(int(RNG.integers(a, z)) for a, z in zip(lo, hi))
        idx[pos] = np.ravel_multi_index(pos[:2] + spot, out)
    return idx


@pytest.mark.parametrize("pooled,out,attrs,given", [
    ((1, 2, 2, 3), (1, 2, 4, 6), dict(kernel_shape=[2, 2], strides=[2, 2]), False),
    ((1, 2, 3, 3), (1, 2, 5, 5), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), False),
    ((2, 1, 3, 3), (2, 1, 7, 7), dict(kernel_shape=[2, 2], strides=[2, 2]), True),   # a 7x7 pooled to 3x3
    ((1, 3, 5), (1, 3, 11), dict(kernel_shape=[3], strides=[2]), False),
    ((1, 1, 2, 2, 3), (1, 1, 4, 5, 6), dict(kernel_shape=[2, 2, 2], strides=[2, 2, 2]), True),
])
@pytest.mark.parametrize("runtime_indices", [False, True])
def test_max_unpool(tmp_path, pooled, out, attrs, given, runtime_indices):
    """Indices address the output's shape (output_shape's when given), as onnxruntime reads them."""
    pads = attrs.get("pads", [0] * 2 * len(attrs["kernel_shape"]))
    idx = unpool_indices(pooled, out, attrs["kernel_shape"], attrs["strides"], pads)
    inputs = [("x", rand(*pooled), False), ("i", idx, not runtime_indices)]
    if given:
        inputs.append(("shape", np.array(out, np.int64), True))
    run(tmp_path, "MaxUnpool", inputs, opset=22, **attrs)


def pool_unpool(shape: tuple[int, ...]):
    """SegNet's pair: MaxPool's Indices into MaxUnpool (with output_shape from Shape), overlapping
    windows included (their repeated indices carry the same value)."""
    b, window = Builder(7), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    b.nodes += [helper.make_node("MaxPool", ["x"], ["p", "i"], **window), helper.make_node("Shape", ["x"], ["s"]),
                helper.make_node("MaxUnpool", ["p", "i", "s"], ["y"], **window)]
    return b.model([("x", F, list(shape))], [("y", F, None)], opset=22)


def test_max_pool_then_unpool(tmp_path):
    check(pool_unpool((2, 16, 33, 40)), {"x": rand(2, 16, 33, 40)}, tmp_path)


def test_max_unpool_indices_outside_the_output_write_nothing(tmp_path):
    """onnxruntime refuses them; kiln writes the others and leaves no stray store."""
    x, idx = rand(1, 1, 2, 2), np.array([[[[-1, 5], [16, 15]]]], np.int64)
    model = single_op("MaxUnpool", [("x", x, False), ("i", idx, False)], opset=22, kernel_shape=[2, 2], strides=[2, 2])
    want = np.zeros((1, 1, 4, 4), np.float32)
    want.reshape(-1)[[5, 15]] = x.reshape(-1)[[1, 3]]
    np.testing.assert_array_equal(kiln_run(model, {"x": x, "i": idx}, tmp_path)[0], want)


@pytest.mark.parametrize("shape,batch_axis,lens", [
    ((4, 3), 1, [4, 1, 3]),
    ((3, 5, 2), 0, [5, 0, 2]),
    ((6, 2, 2, 3), 1, [1, 6]),
    ((2, 4, 3), 0, [4, 4]),
])
@pytest.mark.parametrize("runtime_lens", [False, True])
def test_reverse_sequence(tmp_path, shape, batch_axis, lens, runtime_lens):
    lens = np.array(lens, np.int64)
    inputs = [("x", rand(*shape), False), ("lens", lens, not runtime_lens)]
    run(tmp_path, "ReverseSequence", inputs, opset=10, batch_axis=batch_axis, time_axis=1 - batch_axis)


def test_reverse_sequence_past_the_end_reverses_it_all(tmp_path):
    """A runtime length past the time axis (onnxruntime refuses it) stays inside the tensor."""
    x = rand(3, 2, 4)
    model = single_op("ReverseSequence", [("x", x, False), ("lens", np.array([2, 7], np.int64), False)], opset=10)
    got = kiln_run(model, {"x": x, "lens": np.array([2, 7], np.int64)}, tmp_path)[0]
    want = np.stack([np.concatenate([x[1::-1, 0], x[2:, 0]]), x[::-1, 1]], axis=1)
    np.testing.assert_array_equal(got, want)


def test_reverse_sequence_of_integers(tmp_path):
    x = np.arange(24, dtype=np.int64).reshape(4, 2, 3)
    run(tmp_path, "ReverseSequence", [("x", x, False), ("lens", np.array([3, 4], np.int64), False)], opset=10)


@pytest.mark.parametrize("to,x", [
    (TensorProto.INT32, np.array([[1.5, -2.0, 0.0, -0.0], [np.pi, 1e-45, 3.4e38, -7.25]], np.float32)),
    (TensorProto.FLOAT, np.array([0, 1, -1, 0x7F800000, 0x3F800000, -0x80000000, 123456789], np.int32)),
    (TensorProto.INT32, np.array(0.1, np.float32)),
    (TensorProto.FLOAT, np.array([[7, -8]], np.int32)),
])
def test_bitcast(tmp_path, to, x):
    """Specials for floats: NaN and the infinities keep their bit patterns."""
    run(tmp_path, "BitCast", [("x", x, False)], opset=26, specials=x.dtype == np.float32, to=to)


def test_bitcast_of_bool_is_its_byte(tmp_path):
    """onnxruntime 1.31 has no bool BitCast: onnx's reference is the oracle."""
    x = np.array([[True, False, True]])
    check_reference(single_op("BitCast", [("x", x, False)], opset=26, to=TensorProto.UINT8), {"x": x}, tmp_path)


@pytest.mark.parametrize("to,message", [(TensorProto.INT64, "cannot reinterpret f32 as i64"),
                                        (TensorProto.UINT32, "unsupported target type UINT32")])
def test_bitcast_kiln_cannot_do_is_one_line(tmp_path, to, message):
    model = single_op("BitCast", [("x", rand(3), False)], opset=26, to=to)
    with pytest.raises(CompileError, match=rf"^BitCast node the_node: {message}"):
        kiln_run(model, {"x": rand(3)}, tmp_path)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), (None, 0)])
def test_reduce_max_min_of_bool(tmp_path, op, axes, keepdims):
    x = RNG.uniform(size=(3, 4, 5)) > 0.3
    x[1] = True
    inputs = [("x", x, False)] + ([] if axes is None else [("axes", np.array(axes, np.int64), True)])
    run(tmp_path, op, inputs, opset=20, keepdims=keepdims)


@pytest.mark.parametrize("xs,ws,attrs", [
    ((1, 2, 3, 4, 5), (2, 3, 3, 3, 3), {}),
    ((1, 4, 3, 3, 4), (4, 1, 2, 3, 2),
     dict(group=2, strides=[2, 1, 2], pads=[1, 0, 1, 0, 1, 1], output_padding=[1, 0, 1])),
    ((2, 2, 2, 3, 3), (2, 2, 3, 2, 2), dict(dilations=[2, 1, 1], strides=[1, 2, 2])),
])
def test_conv_transpose_3d(tmp_path, xs, ws, attrs):
    inputs = [("x", rand(*xs), False), ("w", rand(*ws, lo=-0.5, hi=0.5), True),
              ("b", rand(ws[1] * attrs.get("group", 1)), True)]
    run(tmp_path, "ConvTranspose", inputs, specials=False, **attrs)


# -- CausalConvWithState and LinearAttention (opset 27, onnx's context-dependent function bodies) --
# onnxruntime 1.31 has neither (opset 27): onnx's reference is the oracle. No NaN/infinity feeds: the
# depthwise conv and the state's matrix products order inf - inf differently from numpy.
def _after_relu(model):
    """The model with its node's first input computed by a Relu of a graph input of that name, so
    the function body is built from a shape the importer infers rather than a declared one."""
    node = model.graph.node[0]
    first = node.input[0]
    node.input[0] = f"{first}.relu"
    model.graph.node.insert(0, helper.make_node("Relu", [first], [node.input[0]]))
    return model


@pytest.mark.parametrize("activation", ["none", "silu", "swish"])
@pytest.mark.parametrize("bias,past", [(False, False), (True, False), (False, True), (True, True)])
def test_causal_conv_with_state(tmp_path, activation, bias, past):
    x, w = rand(2, 3, 7), rand(3, 1, 4)
    inputs = [("x", x, False), ("w", w, True), ("b", rand(3), True) if bias else ("", None, False),
              ("s", rand(2, 3, 3), False) if past else ("", None, False)]
    model = single_op("CausalConvWithState", [i for i in inputs if i[0]], 2, 27, activation=activation)
    model.graph.node[0].input[:] = [n for n, _, _ in inputs]
    feeds = {n: a for n, a, init in inputs if n and not init}
    check_reference(model, feeds, tmp_path)
    check_reference(_after_relu(model), feeds, tmp_path)


def test_causal_conv_with_state_of_a_runtime_weight_is_one_line(tmp_path):
    """The weight as a graph input: the body is built (its declared shape gives the group count),
    and its Conv says, as every Conv does, that kiln needs the weights at build time."""
    feeds = {"x": rand(1, 4, 5), "w": rand(4, 1, 3)}
    model = single_op("CausalConvWithState", [(n, a, False) for n, a in feeds.items()], 2, 27)
    with pytest.raises(CompileError, match=r"^Conv node the_node/Conv: weights must be constant$"):
        kiln_run(model, feeds, tmp_path)


# case -> (update_rule, q heads, kv heads, T, d_k, d_v, decay per "head" or per "dk", beta's last dim)
LINEAR_ATTENTION = {
    "linear": ("linear", 2, 2, 5, 4, 3, None, None),
    "gated_per_key_dim": ("gated", 2, 2, 4, 4, 4, "dk", None),
    "gated_per_head_gqa": ("gated", 4, 2, 3, 2, 3, "head", None),
    "delta": ("delta", 2, 2, 4, 3, 3, None, 2),
    "gated_delta_mqa": ("gated_delta", 3, 1, 5, 4, 2, "dk", 1),
    "gated_delta_decode": ("gated_delta", 2, 2, 1, 4, 4, "head", 2),
}


@pytest.mark.parametrize("case", sorted(LINEAR_ATTENTION))
@pytest.mark.parametrize("past", [False, True])
def test_linear_attention(tmp_path, case, past):
    rule, hq, hkv, t, dk, dv, decay, beta = LINEAR_ATTENTION[case]
    feeds = {"q": rand(2, t, hq * dk), "k": rand(2, t, hkv * dk, lo=-0.5, hi=0.5), "v": rand(2, t, hkv * dv)}
    names = ["q", "k", "v", "past" if past else "", "decay" if decay else "", "beta" if beta else ""]
    if past:
        feeds["past"] = rand(2, hkv, dk, dv)
    if decay:
        feeds["decay"] = rand(2, t, hkv * (dk if decay == "dk" else 1), lo=-1, hi=0)
    if beta:
        feeds["beta"] = rand(2, t, beta, lo=0, hi=1)
    model = single_op("LinearAttention", [(n, feeds[n], False) for n in names if n], 2, 27,
                      q_num_heads=hq, kv_num_heads=hkv, update_rule=rule)
    model.graph.node[0].input[:] = names
    check_reference(model, feeds, tmp_path)
    check_reference(_after_relu(model), feeds, tmp_path)


def test_linear_attention_scale(tmp_path):
    feeds = {"q": rand(1, 3, 8), "k": rand(1, 3, 8), "v": rand(1, 3, 6)}
    model = single_op("LinearAttention", [(n, a, False) for n, a in feeds.items()], 2, 27,
                      q_num_heads=2, kv_num_heads=2, update_rule="linear", scale=0.3)
    check_reference(model, feeds, tmp_path)


# -- RoiAlign (bilinear samples at run-time regions) -------------------------------------------------
ROIS = np.array([[0, 0, 9, 9], [0, 0, 4, 4], [5, 5, 9, 9], [-3, 2.5, 13, 7.25], [6.5, 1, 7, 8]], np.float32)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("opset,attrs", [
    (16, dict(coordinate_transformation_mode="half_pixel", sampling_ratio=2)),
    (16, dict(coordinate_transformation_mode="output_half_pixel", sampling_ratio=1, output_height=3,
              output_width=4)),
    (16, dict(sampling_ratio=3, spatial_scale=0.5, output_height=2, output_width=5)),
    (10, dict(sampling_ratio=2, output_height=4, output_width=3)),
])
def test_roi_align(tmp_path, mode, opset, attrs):
    """Regions inside, across and past the image's edges, on two images (opset 16: onnxruntime 1.31 has
    no RoiAlign-22, which differs only in types); NaN and infinities in X
    for avg (onnxruntime's max keeps or drops a NaN by where it sits, as its MaxPool does)."""
    x = rand(2, 3, 10, 12)
    inputs = [("x", x, False), ("rois", ROIS * (2 if attrs.get("spatial_scale") else 1), False),
              ("b", np.array([0, 1, 1, 0, 1], np.int64), False)]
    model = single_op("RoiAlign", inputs, 1, opset, mode=mode, **attrs)
    check(model, {n: a for n, a, _ in inputs}, tmp_path)
    if mode == "max":
        return
    x = x.copy()
    x[0, 0, 3, 4], x[1, 1, 7, 8], x[1, 2, 0, 11] = np.nan, np.inf, -np.inf
    check(model, {"x": x, "rois": inputs[1][1], "b": inputs[2][1]}, tmp_path)


def test_roi_align_adaptive_sampling_is_one_line(tmp_path):
    inputs = [("x", rand(1, 1, 4, 4), False), ("rois", ROIS[:1], False), ("b", np.array([0], np.int64), False)]
    with pytest.raises(CompileError, match=r"^RoiAlign node the_node: sampling_ratio 0 \(adaptive.*give "
                                           r"sampling_ratio > 0$"):
        kiln_run(single_op("RoiAlign", inputs, 1, 16), {n: a for n, a, _ in inputs}, tmp_path)


# -- DeformConv (RoiAlign's sampler at learned offsets, then a MatMul) -------------------------------
@pytest.mark.parametrize("xs,ws,attrs", [
    ((1, 2, 6, 7), (3, 2, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((2, 4, 7, 6), (6, 2, 3, 2), dict(group=2, offset_group=2, strides=[2, 1], pads=[1, 0, 0, 1])),
    ((1, 6, 8, 8), (4, 6, 2, 3), dict(offset_group=3, dilations=[2, 1], strides=[1, 2])),
])
@pytest.mark.parametrize("bias,mask", [(False, False), (True, True)])
def test_deform_conv(tmp_path, xs, ws, attrs, bias, mask):
    """Offsets up to three pixels, so taps land between pixels and outside the image (read as 0).
    No NaN/infinity feeds, as for Conv: the column MatMul orders inf - inf differently."""
    n, k, og = xs[0], ws[2] * ws[3], attrs.get("offset_group", 1)
    pads, strides, dil = attrs.get("pads", [0] * 4), attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    out = [(xs[2 + a] + pads[a] + pads[2 + a] - (ws[2 + a] - 1) * dil[a] - 1) // strides[a] + 1 for a in range(2)]
    inputs = [("x", rand(*xs), False), ("w", rand(*ws, lo=-0.5, hi=0.5), True),
              ("offset", rand(n, 2 * og * k, *out, lo=-3, hi=3), False)]
    inputs += [("b", rand(ws[0]), True) if bias else ("", None, False)]
    inputs += [("m", rand(n, og * k, *out, lo=0, hi=1), False)] if mask else []
    model = single_op("DeformConv", [i for i in inputs if i[0]], 1, 19, kernel_shape=list(ws[2:]), **attrs)
    model.graph.node[0].input[:] = [name for name, _, _ in inputs]
    check(model, {name: a for name, a, init in inputs if name and not init}, tmp_path)


# -- Det (LU with partial pivoting unrolled into IR ops) ------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 3), (4, 3, 3), (2, 3, 5, 5), (8, 8)])
def test_det(tmp_path, shape):
    """No NaN/infinity feeds: which pivot a NaN or an infinity wins is the LU library's choice."""
    run(tmp_path, "Det", [("x", rand(*shape), False)], opset=11, specials=False)


def test_det_pivots_and_singular_matrices(tmp_path):
    """A zero on the diagonal (pivoting needed: odd and even permutations), singular matrices (one
    with a column of zeros) and one with equal pivot candidates."""
    x = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 9]],
                  [[0, 0, 1], [0, 1, 0], [1, 0, 0]],
                  [[0, 1, 0], [0, 0, 1], [1, 0, 0]],
                  [[1, 2, 3], [2, 4, 6], [1, 0, 1]],
                  [[2, 1, 1], [-2, 3, 1], [2, -1, 4]],
                  [[0, 1, 2], [0, 4, 5], [0, 7, 9]]], np.float32)
    run(tmp_path, "Det", [("x", x, False)], opset=11, specials=False)


@pytest.mark.parametrize("attrs,reason", [
    (dict(update_rule="gated"), "update_rule 'gated' requires decay input"),
    (dict(update_rule="lstm"), "update_rule must be one of: 'linear', 'gated', 'delta', 'gated_delta'"),
])
def test_linear_attention_mistakes_are_one_line(tmp_path, attrs, reason):
    """onnx's own check of the node, before its function body is built."""
    q = rand(1, 2, 4)
    model = single_op("LinearAttention", [(n, q, False) for n in "qkv"], 2, 27, q_num_heads=2, kv_num_heads=2, **attrs)
    with pytest.raises(CompileError, match=rf"^LinearAttention node the_node \(opset 27\): {reason} \(model.onnx\)$"):
        kiln_run(model, {n: q for n in "qkv"}, tmp_path)
