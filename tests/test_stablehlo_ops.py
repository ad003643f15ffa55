"""Every operator through the StableHLO backend and the launcher on XLA's CPU PJRT plugin,
against onnxruntime (seeded inputs, one-node models)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

import pjrt_harness
import test_compiler_ops
import test_qint_ops
import test_quant_ops
from onnx_models import kiln_run, run_onnxruntime, single_op, with_specials

pytestmark = pytest.mark.e2e
RNG = np.random.default_rng(4321)


def rand(*shape: int, lo: float = -2.0, hi: float = 2.0) -> np.ndarray:
    return RNG.uniform(lo, hi, shape).astype(np.float32)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    return pjrt_harness.link_launcher(tmp_path_factory.mktemp("pjrt-launcher"))


def ints(*shape: int) -> np.ndarray:
    return np.array(RNG.integers(-4, 5, shape), np.int64)


I = np.array  # noqa: E741
CASES = {
    "conv_pads": ("Conv", [("x", rand(1, 3, 9, 9), 0), ("w", rand(5, 3, 3, 3), 1), ("b", rand(5), 1)],
                  dict(pads=[1, 1, 1, 1])),
    "conv_dilated": ("Conv", [("x", rand(1, 2, 12, 10), 0), ("w", rand(3, 2, 3, 2), 1)],
                     dict(dilations=[2, 1], pads=[1, 0, 2, 1])),
    "conv_depthwise": ("Conv", [("x", rand(1, 8, 10, 10), 0), ("w", rand(8, 1, 3, 3), 1)],
                       dict(group=8, strides=[2, 2], pads=[1, 1, 1, 1])),
    "conv_same_lower": ("Conv", [("x", rand(1, 3, 10, 9), 0), ("w", rand(4, 3, 4, 4), 1)],
                        dict(auto_pad="SAME_LOWER")),
    "conv_1d": ("Conv", [("x", rand(3, 5, 17), 0), ("w", rand(7, 5, 3), 1)], dict(pads=[1, 1], strides=[2])),
    "maxpool": ("MaxPool", [("x", rand(2, 3, 11, 10), 0)], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "maxpool_ceil": ("MaxPool", [("x", rand(2, 3, 11, 10), 0)], dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    "maxpool_dilated": ("MaxPool", [("x", rand(2, 3, 11, 10), 0)], dict(kernel_shape=[3, 2], dilations=[2, 1])),
    "avgpool_exclude_pad": ("AveragePool", [("x", rand(1, 5, 11, 10), 0)],
                            dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)),
    "avgpool_ceil_include_pad": ("AveragePool", [("x", rand(1, 5, 11, 10), 0)],
                                 dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1,
                                      count_include_pad=1)),
    "global_average_pool": ("GlobalAveragePool", [("x", rand(2, 7, 5, 6), 0)], {}),
    "gemm": ("Gemm", [("a", rand(7, 5), 0), ("b", rand(9, 7), 1), ("c", rand(5, 1), 1)],
             dict(transA=1, transB=1, alpha=2.0, beta=0.5)),
    "gemm_no_c": ("Gemm", [("a", rand(3, 70), 0), ("b", rand(70, 13), 0)], {}),
    "matmul_batched": ("MatMul", [("a", rand(2, 1, 6, 8), 0), ("b", rand(3, 8, 17), 0)], {}),
    "matmul_weight": ("MatMul", [("a", rand(2, 4, 6, 8), 0), ("b", rand(8, 20), 1)], {}),
    "matmul_vectors": ("MatMul", [("a", rand(8), 0), ("b", rand(8), 0)], {}),
    "add_broadcast": ("Add", [("a", rand(2, 1, 4), 0), ("b", rand(1, 3, 1), 0)], {}),
    "sub": ("Sub", [("a", rand(2, 3, 4), 0), ("b", rand(3, 1), 0)], {}),
    "mul_const": ("Mul", [("a", rand(3, 5), 0), ("b", rand(5), 1)], {}),
    "div": ("Div", [("a", rand(4), 0), ("b", rand(2, 3, 4, lo=0.5), 0)], {}),
    "div_int": ("Div", [("a", ints(3, 4) * 7, 0), ("b", np.array([3, -2, 5, 1], np.int64), 1)], {}),
    "max": ("Max", [("a", rand(3, 4), 0), ("b", rand(4), 0), ("c", rand(3, 1), 0)], {}),
    "min": ("Min", [("a", rand(3, 4), 0), ("b", rand(1), 1)], {}),
    "pow": ("Pow", [("x", rand(4, 7, lo=0.1, hi=3.0), 0), ("y", rand(7), 0)], {}),
    "pow_square": ("Pow", [("x", rand(4, 7), 0), ("y", np.array(2.0, np.float32), 1)], {}),
    "relu": ("Relu", [("x", rand(3, 17, lo=-6, hi=6), 0)], {}),
    "sigmoid": ("Sigmoid", [("x", rand(3, 17, lo=-6, hi=6), 0)], {}),
    "tanh": ("Tanh", [("x", rand(3, 17, lo=-6, hi=6), 0)], {}),
    "erf": ("Erf", [("x", np.linspace(-6, 6, 241, dtype=np.float32), 0)], {}),
    "exp": ("Exp", [("x", rand(3, 17, lo=-6, hi=6), 0)], {}),
    "log": ("Log", [("x", rand(3, 17, lo=0.01, hi=6), 0)], {}),
    "sqrt": ("Sqrt", [("x", rand(5, 9, lo=0.0, hi=10.0), 0)], {}),
    "neg_abs": ("Abs", [("x", rand(3, 17), 0)], {}),
    "hard_sigmoid": ("HardSigmoid", [("x", rand(3, 17, lo=-6, hi=6), 0)], dict(alpha=0.3, beta=0.4)),
    "hard_swish": ("HardSwish", [("x", rand(3, 17, lo=-6, hi=6), 0)], {}),
    "identity": ("Identity", [("x", rand(3, 4), 0)], {}),
    "clip": ("Clip", [("x", rand(4, 9, lo=-8, hi=8), 0), ("lo", np.array(0.0, np.float32), 1),
                      ("hi", np.array(6.0, np.float32), 1)], {}),
    "where": ("Where", [("c", RNG.uniform(size=(3, 1, 5)) > 0.5, 0), ("a", rand(3, 4, 5), 0), ("b", rand(4, 1), 0)], {}),
    "equal": ("Equal", [("a", rand(3, 4), 0), ("b", rand(4), 0)], {}),
    "less": ("Less", [("a", rand(2, 1, 4), 0), ("b", rand(1, 3, 1), 0)], {}),
    "greater_const": ("Greater", [("a", rand(3, 5), 0), ("b", I(0.5, np.float32), 1)], {}),
    "less_or_equal_int": ("LessOrEqual", [("a", ints(3, 4), 0), ("b", ints(4), 0)], {}),
    "greater_or_equal_i32": ("GreaterOrEqual", [("a", ints(3, 4).astype(np.int32), 0),
                                                ("b", ints(3, 1).astype(np.int32), 0)], {}),
    "and": ("And", [("a", RNG.uniform(size=(3, 4)) > 0.5, 0), ("b", RNG.uniform(size=(4,)) > 0.5, 0)], {}),
    "or": ("Or", [("a", RNG.uniform(size=(2, 1, 4)) > 0.5, 0), ("b", RNG.uniform(size=(3, 1)) > 0.5, 0)], {}),
    "xor": ("Xor", [("a", RNG.uniform(size=(3, 4)) > 0.5, 0), ("b", RNG.uniform(size=(3, 4)) > 0.5, 1)], {}),
    "not": ("Not", [("x", RNG.uniform(size=(3, 7)) > 0.5, 0)], {}),
    "cast_to_int": ("Cast", [("x", rand(3, 5, lo=-9, hi=9), 0)], dict(to=7)),
    "cast_to_float": ("Cast", [("x", ints(4, 6), 0)], dict(to=1)),
    "softmax": ("Softmax", [("x", rand(3, 7, 5, lo=-10, hi=10), 0)], dict(axis=1)),
    "log_softmax": ("LogSoftmax", [("x", rand(3, 7, 5, lo=-10, hi=10), 0)], dict(axis=-1)),
    "reduce_mean": ("ReduceMean", [("x", rand(3, 4, 5), 0)], dict(axes=[0, 2], keepdims=0)),
    "reduce_sum_all": ("ReduceSum", [("x", rand(3, 4, 5), 0)], dict(keepdims=0)),
    "reduce_sum_axes": ("ReduceSum", [("x", rand(3, 4, 5), 0), ("axes", np.array([-1], np.int64), 1)],
                        dict(keepdims=1)),
    "reduce_max": ("ReduceMax", [("x", rand(3, 4, 5), 0)], dict(axes=[1], keepdims=0)),
    "reduce_min": ("ReduceMin", [("x", rand(3, 4, 5), 0)], dict(axes=[0, 2], keepdims=1)),
    "reduce_prod": ("ReduceProd", [("x", rand(3, 4, 5, lo=0.5, hi=1.5), 0)], dict(axes=[-1], keepdims=0)),
    "reduce_l1": ("ReduceL1", [("x", rand(3, 4, 5), 0)], dict(axes=[1], keepdims=1)),
    "reduce_l2": ("ReduceL2", [("x", rand(3, 4, 5), 0)], dict(keepdims=0)),
    "reduce_log_sum": ("ReduceLogSum", [("x", rand(3, 4, 5, lo=0.1), 0)], dict(axes=[2], keepdims=0)),
    "reduce_log_sum_exp": ("ReduceLogSumExp", [("x", rand(3, 4, 5, lo=-3, hi=3), 0)], dict(axes=[0, 1], keepdims=0)),
    "reduce_sum_square": ("ReduceSumSquare", [("x", rand(3, 4, 5), 0)], dict(axes=[1], keepdims=1)),
    "argmax": ("ArgMax", [("x", ints(3, 4, 5).astype(np.float32), 0)], dict(axis=1)),
    "argmax_last": ("ArgMax", [("x", ints(3, 4, 5).astype(np.float32), 0)], dict(axis=-1, keepdims=0,
                                                                                select_last_index=1)),
    "argmin": ("ArgMin", [("x", ints(3, 4, 5).astype(np.float32), 0)], dict(axis=0, keepdims=0)),
    "argmin_last_int": ("ArgMin", [("x", ints(3, 4, 5), 0)], dict(axis=2, select_last_index=1)),
    "lrn": ("LRN", [("x", rand(2, 7, 5, 6), 0)], dict(size=3)),
    "lrn_wide": ("LRN", [("x", rand(1, 16, 4, 5), 0)], dict(size=5, alpha=0.3, beta=0.6, bias=2.0)),
    "layer_norm": ("LayerNormalization", [("x", rand(3, 5, 16), 0), ("s", rand(5, 16), 1), ("b", rand(5, 16), 1)],
                   dict(axis=-2, epsilon=1e-3)),
    "layer_norm_no_bias": ("LayerNormalization", [("x", rand(2, 33), 0), ("s", rand(33), 1)], {}),
    "batch_norm": ("BatchNormalization", [("x", rand(2, 6, 5, 4), 0), ("s", rand(6), 1), ("b", rand(6), 1),
                                          ("m", rand(6), 1), ("v", rand(6, lo=0.1), 1)], dict(epsilon=1e-3)),
    "reshape": ("Reshape", [("x", rand(2, 3, 4), 0), ("s", np.array([2, 0, 2, 2], np.int64), 1)], {}),
    "flatten": ("Flatten", [("x", rand(2, 3, 4), 0)], dict(axis=2)),
    "transpose": ("Transpose", [("x", rand(3, 4, 5), 0)], dict(perm=[2, 0, 1])),
    "concat": ("Concat", [("a", rand(2, 3, 4), 0), ("b", rand(2, 2, 4), 0), ("c", rand(2, 1, 4), 1)], dict(axis=-2)),
    "slice": ("Slice", [("x", rand(4, 6, 5), 0), ("st", I([0, 1]), 1), ("en", I([100, -1]), 1), ("ax", I([1, 2]), 1),
                        ("sp", I([2, 1]), 1)], {}),
    "slice_reversed": ("Slice", [("x", rand(4, 6, 5), 0), ("st", I([4, -3]), 1), ("en", I([0, 2]), 1),
                                 ("ax", I([1, 2]), 1), ("sp", I([-2, -1]), 1)], {}),
    "gather_runtime": ("Gather", [("x", rand(5, 7), 0), ("i", I([[0, 3], [-1, 2], [4, 4]]), 0)], dict(axis=0)),
    "gather_constant": ("Gather", [("x", rand(3, 6, 2), 0), ("i", I([5, 0, -2]), 1)], dict(axis=1)),
    "gather_embedding": ("Gather", [("w", rand(50, 16), 1), ("ids", I([[3, 49, 0, 7]]), 0)], {}),
    "pad_constant": ("Pad", [("x", rand(2, 3, 4), 0), ("p", I([0, 1, -1, 0, 2, 1]), 1),
                             ("v", I(1.5, np.float32), 1)], {}),
    "pad_reflect": ("Pad", [("x", rand(2, 3, 4), 0), ("p", I([0, 2, 1, 0, 1, 3]), 1)], dict(mode="reflect")),
    "pad_edge": ("Pad", [("x", rand(2, 3, 4), 0), ("p", I([1, 0, 5, 0, 2, 1]), 1)], dict(mode="edge")),
    "pad_runtime_value": ("Pad", [("x", rand(3, 4), 0), ("p", I([1, 0, 0, 2]), 1), ("v", I(-7.0, np.float32), 0)], {}),
    "unsqueeze": ("Unsqueeze", [("x", rand(3, 4), 0), ("a", I([0, 3]), 1)], {}),
    "squeeze": ("Squeeze", [("x", rand(3, 1, 4, 1), 0), ("a", I([1]), 1)], {}),
    "expand": ("Expand", [("x", rand(3, 1), 0), ("s", I([2, 3, 4]), 1)], {}),
    "cast_like": ("CastLike", [("x", rand(3, 5, lo=-9, hi=9), 0), ("like", np.zeros(1, np.int64), 1)], {}),
    "trilu": ("Trilu", [("x", rand(2, 4, 5), 0), ("k", I(-1), 1)], dict(upper=0)),
    "instance_norm": ("InstanceNormalization", [("x", rand(2, 3, 4, 5), 0), ("s", rand(3), 1), ("b", rand(3), 1)], {}),
    "depth_to_space": ("DepthToSpace", [("x", rand(2, 8, 4, 6), 0)], dict(blocksize=2, mode="CRD")),
    "space_to_depth": ("SpaceToDepth", [("x", rand(2, 8, 4, 6), 0)], dict(blocksize=2)),
    "tile": ("Tile", [("x", rand(2, 3), 0), ("r", I([2, 3]), 1)], {}),
    "mod": ("Mod", [("a", I([[-7, -1, 0, 6, 13]]), 0), ("b", I([[3], [-3]]), 0)], {}),
    "mod_float": ("Mod", [("a", np.float32([[-4.3, 7.2, 5.0, 1.0, -1.0, 1e7, 0.3]]), 0),
                          ("b", np.float32([[2.1], [-3.4], [0.1], [np.inf], [0.0]]), 0)], dict(fmod=1)),
    "pow_int": ("Pow", [("x", I([[2, -3, 1, -1, 7, 11]]), 0), ("e", I([[0], [3], [13], [-2]]), 0)], {}),
    "pow_int_float": ("Pow", [("x", np.int32([[2, 3, 1, 5, 7]]), 0), ("e", np.float32([[2], [0.5], [-1]]), 0)], {}),
    "mod_fmod": ("Mod", [("a", I([[-7, -1, 0, 6, 13]]), 0), ("b", I([[3], [-3]]), 0)], dict(fmod=1)),
    "resize_nearest": ("Resize", [("x", rand(1, 2, 5, 7), 0), ("roi", I([], np.float32), 1),
                                  ("scales", I([1, 1, 2.5, 0.6], np.float32), 1)], {}),
}
# Resize's linear and cubic modes without NaN and infinities: see tests/test_compiler_ops.py's test_resize.
RESIZE_CASES = {
    "resize_linear": ("Resize", [("x", rand(1, 2, 5, 7), 0), ("roi", I([], np.float32), 1),
                                 ("scales", I([1, 1, 2, 0.6], np.float32), 1)], dict(mode="linear"), 13),
    "resize_cubic_align_corners": ("Resize", [("x", rand(1, 2, 5, 7), 0), ("roi", I([], np.float32), 1),
                                              ("scales", I([], np.float32), 1), ("sizes", I([1, 2, 3, 10]), 1)],
                                   dict(mode="cubic", coordinate_transformation_mode="align_corners"), 13),
    "resize_crop_and_resize": ("Resize", [("x", rand(1, 2, 5, 7), 0), ("roi", I([0.4, 0.6, 1.2, 0.7], np.float32), 1),
                                          ("scales", I([], np.float32), 1), ("sizes", I([7, 5]), 1)],
                               dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
                                    extrapolation_value=10.0, axes=[2, 3]), 18),
    "resize_cubic_antialias": ("Resize", [("x", rand(1, 2, 5, 7), 0), ("roi", I([], np.float32), 1),
                                          ("scales", I([], np.float32), 1), ("sizes", I([2, 3]), 1)],
                               dict(mode="cubic", antialias=1, axes=[2, 3]), 18),
    "affine_grid_2d": ("AffineGrid", [("theta", rand(2, 2, 3), 0), ("size", I([2, 3, 5, 7]), 1)], {}, 20),
    "affine_grid_3d": ("AffineGrid", [("theta", rand(1, 3, 4), 0), ("size", I([1, 2, 3, 4, 5]), 1)],
                       dict(align_corners=1), 20),
    "grid_sample_bilinear": ("GridSample", [("x", rand(2, 3, 5, 6), 0), ("grid", rand(2, 4, 7, 2, lo=-1.6, hi=1.6), 0)],
                             dict(mode="bilinear", padding_mode="zeros"), 16),
    "grid_sample_nearest_reflection": ("GridSample", [("x", rand(2, 3, 5, 6), 0),
                                                      ("grid", rand(2, 4, 7, 2, lo=-1.6, hi=1.6), 0)],
                                       dict(mode="nearest", padding_mode="reflection", align_corners=1), 16),
    "grid_sample_bicubic_reflection": ("GridSample", [("x", rand(2, 3, 5, 6), 0),
                                                      ("grid", rand(2, 4, 7, 2, lo=-1.6, hi=1.6), 0)],
                                       dict(mode="bicubic", padding_mode="reflection"), 16),
    "grid_sample_volumetric_border": ("GridSample", [("x", rand(1, 2, 3, 4, 5), 0),
                                                     ("grid", rand(1, 2, 3, 4, 3, lo=-1.4, hi=1.4), 0)],
                                      dict(mode="linear", padding_mode="border"), 20),
}
CASES.update({  # indexing ops and the loss functions (onnx's function bodies)
    "gather_elements": ("GatherElements", [("x", rand(3, 4), 0), ("i", I([[2, -1, 0, 1], [-3, 0, 2, 2]]), 0)],
                        dict(axis=0)),
    "gather_elements_int32": ("GatherElements", [("x", ints(2, 5), 0), ("i", I([[4, -5], [0, -1]], np.int32), 0)],
                              dict(axis=-1)),
    "gather_nd": ("GatherND", [("x", rand(4, 5, 3), 0), ("i", I([[[0, -1], [3, 2]], [[-4, 4], [1, 0]]]), 0)], {}),
    "gather_nd_batch": ("GatherND", [("x", rand(2, 4, 5), 0), ("i", I([[[1], [-1]], [[0], [3]]]), 0)],
                        dict(batch_dims=1)),
    "one_hot": ("OneHot", [("i", I([[0, 4, -1], [-6, 7, 2]]), 0), ("d", I(5), 1), ("v", I([-1.0, 3.0], np.float32), 0)],
                dict(axis=1)),
    "nll_loss": ("NegativeLogLikelihoodLoss", [("x", rand(2, 4, 3), 0), ("t", I([[1, 3, 0], [2, 2, 1]]), 0),
                                               ("w", rand(4, lo=0.1), 1)], dict(ignore_index=2)),
    "scatter_elements": ("ScatterElements", [("x", rand(3, 4), 0), ("i", I([[1, -1], [0, 2], [3, 3]]), 0),
                                             ("u", rand(3, 2), 0)], dict(axis=1, reduction="add")),
    "scatter_nd": ("ScatterND", [("x", ints(4, 3), 0), ("i", I([[2], [-1]]), 0), ("u", ints(2, 3), 0)], {}),
    "conv_transpose": ("ConvTranspose", [("x", rand(1, 4, 5, 6), 0), ("w", rand(4, 3, 4, 4), 1), ("b", rand(3), 1)],
                       dict(strides=[2, 2], pads=[1, 1, 1, 1])),
    "conv_transpose_group_1d": ("ConvTranspose", [("x", rand(2, 4, 7), 0), ("w", rand(4, 1, 3), 1)],
                                dict(group=2, strides=[2], output_padding=[1], dilations=[2])),
    "conv_transpose_same": ("ConvTranspose", [("x", rand(1, 2, 4, 3), 0), ("w", rand(2, 2, 3, 3), 1)],
                            dict(strides=[2, 3], auto_pad="SAME_LOWER")),
    "einsum_batch_diagonal": ("Einsum", [("x", rand(3, 5, 5), 0)], dict(equation="...ii ->...i")),
    "einsum_attention": ("Einsum", [("q", rand(2, 3, 4, 8), 0), ("k", rand(2, 3, 6, 8), 0)],
                         dict(equation="bhqd,bhkd->bhqk")),
    "einsum_implicit_three": ("Einsum", [("a", rand(2, 3, 4), 0), ("b", rand(2, 4, 5), 0), ("c", rand(5, 3), 0)],
                              dict(equation="ijk,ikl,lm")),
    "hardmax": ("Hardmax", [("x", np.round(rand(3, 4, 5)), 0)], dict(axis=1)),
    "compress": ("Compress", [("x", rand(3, 4), 0), ("c", I([1, 0, 1], np.bool_), 1)], dict(axis=-1)),
    "lp_pool": ("LpPool", [("x", rand(1, 3, 6, 7), 0)], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "lp_pool_p3": ("LpPool", [("x", rand(1, 2, 9), 0)], dict(kernel_shape=[4], p=3)),
    "sce_loss": ("SoftmaxCrossEntropyLoss", [("x", rand(3, 5), 0), ("t", I([4, 0, 1]), 0)], dict(reduction="sum")),
})
CASES_AT_OPSET = {  # case -> (op, inputs, attrs, opset)
    "deform_conv_groups_mask_bias": ("DeformConv", [("x", rand(2, 4, 7, 6), 0), ("w", rand(6, 2, 3, 2), 1),
                                                    ("o", rand(2, 24, 3, 6, lo=-3, hi=3), 0), ("b", rand(6), 1),
                                                    ("m", rand(2, 12, 3, 6, lo=0, hi=1), 0)],
                                     dict(group=2, offset_group=2, strides=[2, 1], pads=[1, 0, 0, 1],
                                          kernel_shape=[3, 2]), 19),
    "det_batched": ("Det", [("x", rand(2, 3, 4, 4), 0)], {}, 11),
    "det_pivoting": ("Det", [("x", I([[[0, 1, 2], [3, 4, 5], [6, 7, 9]], [[0, 1, 0], [0, 0, 1], [1, 0, 0]]],
                                     np.float32), 0)], {}, 22),
    "roi_align_avg": ("RoiAlign", [("x", rand(2, 3, 10, 12), 0), ("r", test_compiler_ops.ROIS, 0),
                                   ("b", I([0, 1, 1, 0, 1]), 0)], dict(sampling_ratio=2), 16),
    "roi_align_max_output_half_pixel": ("RoiAlign", [("x", rand(1, 2, 9, 8), 0), ("r", test_compiler_ops.ROIS, 0),
                                                     ("b", I([0, 0, 0, 0, 0]), 1)],
                                        dict(mode="max", coordinate_transformation_mode="output_half_pixel",
                                             sampling_ratio=3, spatial_scale=0.75, output_height=3,
                                             output_width=2), 16),
    "attention_gqa_causal": ("Attention", [("q", rand(2, 4, 12), 0), ("k", rand(2, 4, 6), 0), ("v", rand(2, 4, 6), 0)],
                             dict(q_num_heads=4, kv_num_heads=2, is_causal=1), 23),
    "scatter_nd_max": ("ScatterND", [("x", rand(4, 3), 0), ("i", I([[2], [-2]]), 0), ("u", rand(2, 3), 0)],
                       dict(reduction="max"), 18),
    "scatter_elements_min": ("ScatterElements", [("x", ints(3, 4), 0), ("i", I([[1, 1], [0, -4], [3, 2]]), 0),
                                                 ("u", ints(3, 2), 0)], dict(axis=1, reduction="min"), 18),
    **RESIZE_CASES,
    "bitwise_and": ("BitwiseAnd", [("a", I([[-7, -1, 0, 6, 13]]), 0), ("b", I([[3], [-3]]), 0)], {}, 18),
    "bitwise_or": ("BitwiseOr", [("a", I([[-7, -1, 0, 6, 13]]), 0), ("b", I([[3], [-3]]), 0)], {}, 18),
    "bitwise_xor_i32": ("BitwiseXor", [("a", np.int32([[-7, -1, 0, 6, 13]]), 0), ("b", np.int32([[3], [-3]]), 0)], {}, 18),
    "bitwise_not": ("BitwiseNot", [("a", I([[-7, -1, 0, 6, 13]]), 0)], {}, 18),
    "hann_window": ("HannWindow", [("n", I(10), 1)], {}, 17),
    "hamming_window_symmetric": ("HammingWindow", [("n", I(7), 1)], dict(periodic=0), 17),
    "blackman_window_int64": ("BlackmanWindow", [("n", I(9), 1)], dict(output_datatype=7), 17),
    "max_pool_3d": ("MaxPool", [("x", rand(1, 2, 6, 7, 8), 0)],
                    dict(kernel_shape=[3, 2, 3], strides=[2, 2, 2], dilations=[1, 2, 1], ceil_mode=1), 19),
    "average_pool_3d": ("AveragePool", [("x", rand(2, 2, 5, 6, 7), 0)],
                        dict(kernel_shape=[2, 3, 3], pads=[1, 0, 1, 0, 1, 1], count_include_pad=0), 19),
    "average_pool_3d_same": ("AveragePool", [("x", rand(1, 3, 5, 5, 6), 0)],
                             dict(kernel_shape=[3, 3, 3], auto_pad="SAME_UPPER", strides=[2, 1, 2],
                                  count_include_pad=1), 19),
    "lp_pool_3d": ("LpPool", [("x", rand(1, 2, 5, 6, 4), 0)], dict(kernel_shape=[2, 3, 2], p=3), 19),
    "col2im": ("Col2Im", [("x", rand(2, 6, 15), 0), ("i", I([5, 6]), 1), ("b", I([2, 3]), 1)],
               dict(strides=[2, 1], pads=[1, 0, 0, 1]), 18),
    "center_crop_pad": ("CenterCropPad", [("x", rand(3, 10, 9), 0), ("s", I([7, 12]), 1)], dict(axes=[1, 2]), 18),
    "rotary_interleaved_positions": ("RotaryEmbedding", [("x", rand(2, 3, 4, 8), 0), ("c", rand(7, 2), 0),
                                                         ("s", rand(7, 2), 0), ("p", I([[0, 2, 4, 6], [6, 5, 1, 0]]), 1)],
                                     dict(interleaved=1, rotary_embedding_dim=4), 23),
    "rotary_3d": ("RotaryEmbedding", [("x", rand(2, 4, 12), 0), ("c", rand(2, 4, 2), 0), ("s", rand(2, 4, 2), 0)],
                  dict(num_heads=3), 23),
    "swish": ("Swish", [("x", rand(3, 17, lo=-8, hi=8), 0)], dict(alpha=0.3), 24),
    "dft_complex_axis2": ("DFT", [("x", rand(3, 8, 5, 2), 0)], dict(axis=2), 17),
    "dft_rfft_padded": ("DFT", [("x", rand(2, 10, 1), 0), ("n", I(16), 1)], dict(axis=1, onesided=1), 17),
    "dft20_inverse_truncated": ("DFT", [("x", rand(6, 12, 2), 0), ("n", I(10), 1), ("axis", I(-2), 1)],
                                dict(inverse=1), 20),
    "stft_window": ("STFT", [("x", rand(2, 64, 1), 0), ("step", I(8), 1), ("w", np.hanning(16).astype(np.float32), 1)],
                    {}, 17),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator(launcher, tmp_path, case):
    op, inputs, attrs = CASES[case]
    opset = 20 if op == "Gelu" else 17
    model = single_op(op, [(n, a, bool(init)) for n, a, init in inputs], 1, opset, **attrs)
    pjrt_harness.check(launcher, model, {n: a for n, a, init in inputs if not init}, tmp_path)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceLogSumExp", "ReduceL2", "ReduceMean"])
@pytest.mark.parametrize("noop", [0, 1])
def test_reduce_opset18(launcher, tmp_path, op, noop):
    """Axes as an input (opset 18), and no axes at all: everything, or with noop_with_empty_axes, nothing."""
    x = rand(2, 3, 4)
    inputs = [("x", x, False)] + ([] if noop else [("axes", np.array([2, 0], np.int64), True)])
    model = single_op(op, inputs, 1, 18, keepdims=0, noop_with_empty_axes=noop)
    pjrt_harness.check(launcher, model, with_specials({"x": x}), tmp_path)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_max_min_propagate_nan(launcher, tmp_path, op):
    x = rand(4, 6)
    x[0, 3], x[1, 0], x[2, 5], x[3, 2] = np.nan, np.nan, np.inf, -np.inf
    model = single_op(op, [("x", x, False)], 1, 17, axes=[1], keepdims=0)
    got = pjrt_harness.run_model(pjrt_harness.bundle(launcher, model, tmp_path), model, {"x": x})[0]
    np.testing.assert_array_equal(got, (np.max if op == "ReduceMax" else np.min)(x, axis=1))


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_max_min_of_rows_with_nan(launcher, tmp_path, op, last):
    """A NaN wins only in its slice's first place (onnxruntime's scan), else it is passed over."""
    x = rand(5, 6)
    x[0, 0], x[1, 3], x[2, 5], x[3, 0], x[3, 1] = np.nan, np.nan, np.nan, -np.inf, np.nan
    x[4] = np.nan
    model = single_op(op, [("x", x, False)], 1, 17, axis=1, keepdims=0, select_last_index=last)
    pjrt_harness.check(launcher, model, {"x": x}, tmp_path)


def test_pad_wrap_opset19(launcher, tmp_path):
    model = single_op("Pad", [("x", rand(2, 3, 4), False), ("p", I([0, 5, 2, 0, 6, 0]), True)], 1, 19, mode="wrap")
    pjrt_harness.check(launcher, model, with_specials({"x": rand(2, 3, 4)}), tmp_path)


@pytest.mark.parametrize("case", sorted(CASES_AT_OPSET))
def test_operator_at_its_opset(launcher, tmp_path, case):
    op, inputs, attrs, opset = CASES_AT_OPSET[case]
    model = single_op(op, [(n, a, bool(init)) for n, a, init in inputs], 1, opset, **attrs)
    pjrt_harness.check(launcher, model, {n: a for n, a, init in inputs if not init}, tmp_path)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(launcher, tmp_path, approximate):
    model = single_op("Gelu", [("x", rand(4, 33, lo=-5, hi=5), False)], 1, 20, approximate=approximate)
    pjrt_harness.check(launcher, model, {"x": rand(4, 33, lo=-5, hi=5)}, tmp_path)


def test_split(launcher, tmp_path):
    model = single_op("Split", [("x", rand(4, 9), False), ("s", I([2, 3, 4]), True)], 3, axis=1)
    pjrt_harness.check(launcher, model, {"x": rand(4, 9)}, tmp_path)


@pytest.mark.parametrize("case", sorted(test_compiler_ops.COMPOSITES))
def test_composite(launcher, tmp_path, case):
    op, attrs, opset = test_compiler_ops.COMPOSITES[case]
    x = rand(3, 17, lo=-6, hi=6)
    model = single_op(op, [("x", x, False)], 1, opset, **attrs)
    for feeds in ({"x": x}, with_specials({"x": x})):
        pjrt_harness.check(launcher, model, feeds, tmp_path)


def test_prelu_and_rms_normalization(launcher, tmp_path):
    x = rand(2, 3, 8)
    prelu = single_op("PRelu", [("x", x, False), ("slope", rand(3, 1), True)], 1, 17)
    rms = single_op("RMSNormalization", [("x", x, False), ("s", rand(3, 8), True)], 1, 23, axis=-2)
    for model in (prelu, rms):
        pjrt_harness.check(launcher, model, with_specials({"x": x}), tmp_path)


@pytest.mark.parametrize("op,attrs", [("GlobalMaxPool", {}), ("MeanVarianceNormalization", {}),
                                      ("LpNormalization", dict(axis=1, p=1))])
def test_normalisations_and_global_max(launcher, tmp_path, op, attrs):
    x = rand(2, 3, 4, 5)
    model = single_op(op, [("x", x, False)], 1, 17, **attrs)
    pjrt_harness.check(launcher, model, {"x": x} if op == "GlobalMaxPool" else with_specials({"x": x}), tmp_path)


# Not with specials: convolutions and dots (XLA's blocked sums order inf and NaN differently), max
# pooling (onnxruntime drops a NaN in a window's first place), casts of NaN to int (undefined), Pow
# (C's pow(-inf, y)) and integer division.
# LRN: onnxruntime slides its channel sum, so one NaN or infinity makes NaN of every later channel.
SPECIALS_SKIPPED = {"Conv", "Gemm", "MatMul", "MaxPool", "Cast", "CastLike", "Pow", "Where", "LRN",
                    "Hardmax"}  # Hardmax: a leading NaN wins, as onnx's reference (onnxruntime: no 1 at all)


@pytest.mark.parametrize("case", [c for c, (op, _, _) in CASES.items()
                                  if op not in SPECIALS_SKIPPED and c != "div_int"])
def test_operator_with_nan_and_inf(launcher, tmp_path, case):
    op, inputs, attrs = CASES[case]
    model = single_op(op, [(n, a, bool(init)) for n, a, init in inputs], 1, 17, **attrs)
    feeds = with_specials({n: a for n, a, init in inputs if not init})
    pjrt_harness.check(launcher, model, feeds, tmp_path)


@pytest.mark.parametrize("case", ["maxpool", "maxpool_ceil", "maxpool_dilated"])
def test_max_pool_propagates_nan(launcher, tmp_path, case):
    """A window holding NaN pools to NaN wherever the NaN sits (kiln's CPU and GPU lowerings agree)."""
    op, inputs, attrs = CASES[case]
    x = inputs[0][1].copy()
    x.reshape(-1)[[0, 37, 101]] = np.nan
    model = single_op(op, [("x", x, False)], 1, 17, **attrs)
    got = pjrt_harness.run_model(pjrt_harness.bundle(launcher, model, tmp_path), model, {"x": x})[0]
    (tmp_path / "cpu").mkdir()
    want = kiln_run(model, {"x": x}, tmp_path / "cpu")[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(want), rtol=1e-6)


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter_against_onnx_reference(launcher, tmp_path, mode):
    """onnxruntime 1.31 has no TensorScatter: onnx's reference is the oracle."""
    from onnx.reference import ReferenceEvaluator
    feeds = {"past": rand(2, 3, 6, 4), "upd": rand(2, 3, 3, 4), "w": I([3, 1] if mode == "linear" else [5, 1])}
    model = single_op("TensorScatter", [(n, a, False) for n, a in feeds.items()], 1, 24, mode=mode)
    got = pjrt_harness.run_model(pjrt_harness.bundle(launcher, model, tmp_path), model, feeds)[0]
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, feeds)[0])


ATTENTION_AT_OPSET = {  # case -> (inputs (name, array, initializer), attrs, opset); onnxruntime 1.31 lacks them
    "window_past": ([("q", rand(2, 4, 3, 4), 0), ("k", rand(2, 2, 5, 4), 0), ("v", rand(2, 2, 5, 3), 0),
                     ("m", rand(3, 7), 1), ("pk", rand(2, 2, 2, 4), 0), ("pv", rand(2, 2, 2, 3), 0)],
                    dict(left_window_size=2, right_window_size=1, is_causal=1), 25),
    "valid_lengths_causal": ([("q", rand(3, 2, 2, 4), 0), ("k", rand(3, 2, 6, 4), 0), ("v", rand(3, 2, 6, 4), 0),
                              *([("", None, 0)] * 3), ("n", I([6, 1, 4]), 1)], dict(is_causal=1), 24),
    "window_valid_lengths": ([("q", rand(2, 2, 3, 4), 0), ("k", rand(2, 2, 6, 4), 0), ("v", rand(2, 2, 6, 4), 0),
                              *([("", None, 0)] * 3), ("n", I([5, 3]), 1)], dict(left_window_size=2), 25),
}


@pytest.mark.parametrize("case", sorted(ATTENTION_AT_OPSET))
def test_attention_against_onnx_reference(launcher, tmp_path, case):
    """Attention's sliding windows (opset 25) and nonpad_kv_seqlen: onnx's reference is the oracle."""
    from onnx.reference import ReferenceEvaluator
    inputs, attrs, opset = ATTENTION_AT_OPSET[case]
    model = single_op("Attention", [(n, a, bool(init)) for n, a, init in inputs if n], 1, opset, **attrs)
    model.graph.node[0].input[:] = [n for n, _, _ in inputs]
    feeds = {n: a for n, a, init in inputs if n and not init}
    got = pjrt_harness.run_model(pjrt_harness.bundle(launcher, model, tmp_path), model, feeds)[0]
    test_compiler_ops.assert_close(got, ReferenceEvaluator(model).run(None, feeds)[0])


def test_swiglu_against_onnx_reference(launcher, tmp_path):
    """onnxruntime 1.31 has no SwiGLU (opset 28): onnx's reference is the oracle, NaN and infinities included."""
    from onnx.reference import ReferenceEvaluator
    feeds = with_specials({"a": rand(2, 3, 8, lo=-8, hi=8), "b": rand(2, 3, 8)})
    model = single_op("SwiGLU", [(n, a, False) for n, a in feeds.items()], 1, 28, alpha=1.7)
    got = pjrt_harness.run_model(pjrt_harness.bundle(launcher, model, tmp_path), model, feeds)[0]
    with np.errstate(all="ignore"):
        test_compiler_ops.assert_close(got, ReferenceEvaluator(model).run(None, feeds)[0])


# -- RNN, GRU, LSTM, CumSum/CumProd, TopK, If (decomposed at build time, as on the other backends) --
@pytest.mark.parametrize("case", sorted(c for c, v in test_compiler_ops.RECURRENT_CASES.items()
                                         if not v[5].get("layout")))  # onnxruntime runs layout 0 only
def test_recurrent(launcher, tmp_path, case):
    from onnx_models import recurrent
    op, seq, batch, size, hidden, attrs = test_compiler_ops.RECURRENT_CASES[case]
    model, feeds = recurrent(op, seq, batch, size, hidden, **attrs)
    pjrt_harness.check(launcher, model, feeds, tmp_path)


@pytest.mark.parametrize("op,x,attrs", [
    ("CumSum", rand(4, 9), dict(exclusive=1)), ("CumSum", ints(3, 8), dict(reverse=1)),
    ("CumProd", rand(4, 9, lo=0.5, hi=1.5), dict(reverse=1, exclusive=1)), ("CumProd", ints(3, 8), {})])
def test_cumulative(launcher, tmp_path, op, x, attrs):
    model = single_op(op, [("x", x, False), ("axis", I(1), True)], 1, 26 if op == "CumProd" else 17, **attrs)
    pjrt_harness.check(launcher, model, with_specials({"x": x}), tmp_path)


@pytest.mark.parametrize("x,axis,k,largest", [(ints(3, 9).astype(np.float32), -1, 4, 1), (ints(4, 6, 5), 1, 6, 0)])
def test_top_k(launcher, tmp_path, x, axis, k, largest):
    model = single_op("TopK", [("x", x, False), ("k", I([k]), True)], 2, axis=axis, largest=largest)
    pjrt_harness.check(launcher, model, {"x": x}, tmp_path)


@pytest.mark.parametrize("width", [4, 3])
def test_if_folds_on_a_shape(launcher, tmp_path, width):
    from onnx_models import if_on_shape
    pjrt_harness.check(launcher, if_on_shape(width), {"x": rand(2, width)}, tmp_path)


@pytest.mark.parametrize("trips,stop_at", [(3, None), (6, 2)])
def test_loop_unrolled(launcher, tmp_path, trips, stop_at):
    from onnx_models import loop_model
    pjrt_harness.check(launcher, loop_model(trips, stop_at), {"x": rand(2, 3)}, tmp_path)


def test_scan_unrolled(launcher, tmp_path):
    from onnx_models import scan_model
    pjrt_harness.check(launcher, scan_model(1, 1, 1), {"s0": rand(2, 3), "x": rand(2, 5, 3)}, tmp_path)


@pytest.mark.parametrize("op", sorted(test_compiler_ops.MATH_INPUTS))
def test_math(launcher, tmp_path, op):
    """Sin, Cos, Atan, Floor, Ceil and Round as StableHLO, the rest decomposed into them, with NaN and inf."""
    lo, hi = test_compiler_ops.MATH_INPUTS[op]
    x = np.concatenate([rand(4, 29, lo=lo, hi=hi).ravel(), np.float32([0, -0.0, 1, -1, 0.5, -0.5, 2.5, 1e-5])])
    model = single_op(op, [("x", x, False)], 1, 17)
    pjrt_harness.check(launcher, model, with_specials({"x": x}), tmp_path)


@pytest.mark.parametrize("case", sorted(test_quant_ops.QDQ_CASES))
def test_qdq(launcher, tmp_path, case):
    """QuantizeLinear/DequantizeLinear pairs: ties to even, saturation, per axis and blocked."""
    shape, scale, zp, opset, attrs = test_quant_ops.QDQ_CASES[case]
    x = test_quant_ops.ties(shape, float(np.max(scale)))
    pjrt_harness.check(launcher, test_quant_ops.qdq_model(shape, scale, zp, opset, **attrs), {"x": x}, tmp_path)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bit_shift(launcher, tmp_path, dtype, direction):
    model, a, b, want = test_compiler_ops.bit_shift_case(dtype, direction)
    got = pjrt_harness.run_model(pjrt_harness.bundle(launcher, model, tmp_path), model, {"a": a, "b": b})[0]
    np.testing.assert_array_equal(got, want)


# -- uint8/int8 tensors and the integer quantized operators (the cases of test_qint_ops) --------
@pytest.mark.parametrize("case", sorted(c for c in test_qint_ops.CAST_CASES if not c.startswith("f32_to")))
def test_cast_8bit(launcher, tmp_path, case):
    """Float -> 8 bits beyond the range is undefined in ONNX (XLA saturates, onnxruntime wraps): not here."""
    x, to = test_qint_ops.CAST_CASES[case]
    pjrt_harness.check(launcher, single_op("Cast", [("x", x, False)], to=to), {"x": x}, tmp_path)


@pytest.mark.parametrize("to", [2, 3])
def test_cast_float_to_8bit_in_range(launcher, tmp_path, to):
    x = rand(4, 6, lo=0, hi=255) if to == 2 else rand(4, 6, lo=-128, hi=127)
    pjrt_harness.check(launcher, single_op("Cast", [("x", x, False)], to=to), {"x": x}, tmp_path)


@pytest.mark.parametrize("dtype", ["u8", "i8"])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Less", "GreaterOrEqual", "Equal"])
def test_8bit_elementwise(launcher, tmp_path, dtype, op):
    feeds = test_qint_ops.binary_inputs(op, test_qint_ops.U8 if dtype == "u8" else test_qint_ops.I8)
    pjrt_harness.check(launcher, single_op(op, [(n, a, False) for n, a in feeds.items()], opset=14), feeds, tmp_path)


@pytest.mark.parametrize("case", sorted(test_qint_ops.MOVEMENT_CASES))
def test_8bit_movement(launcher, tmp_path, case):
    op, extra, attrs = test_qint_ops.MOVEMENT_CASES[case]
    inputs = [("x", test_qint_ops.U8, False)] + extra
    if op == "Where":
        inputs = [("c", test_qint_ops.U8 > 128, False)] + inputs
    feeds = {n: a for n, a, init in inputs if not init}
    pjrt_harness.check(launcher, single_op(op, inputs, **attrs), feeds, tmp_path)


@pytest.mark.parametrize("case", sorted(test_qint_ops.DYNAMIC_QUANTIZE_INPUTS))
def test_dynamic_quantize_linear(launcher, tmp_path, case):
    x = test_qint_ops.DYNAMIC_QUANTIZE_INPUTS[case]
    pjrt_harness.check(launcher, test_qint_ops.dynamic_quantize_model(), {"x": x}, tmp_path)


def test_quantize_with_computed_scale(launcher, tmp_path):
    pjrt_harness.check(launcher, *test_qint_ops.computed_scale_model(), tmp_path)


@pytest.mark.parametrize("case", sorted(test_qint_ops.MATMUL_INTEGER_CASES))
def test_matmul_integer(launcher, tmp_path, case):
    inputs = test_qint_ops.matmul_integer_inputs(case)
    model = single_op("MatMulInteger", inputs, opset=10)
    pjrt_harness.check(launcher, model, {n: a for n, a, init in inputs if not init}, tmp_path)


@pytest.mark.parametrize("case", sorted(test_qint_ops.QLINEAR_MATMUL_CASES))
def test_qlinear_matmul(launcher, tmp_path, case):
    inputs = test_qint_ops.qlinear_matmul_inputs(case)
    model = single_op("QLinearMatMul", inputs, opset=test_qint_ops.QLINEAR_MATMUL_CASES[case][3])
    pjrt_harness.check(launcher, model, {"a": inputs[0][1]}, tmp_path)


@pytest.mark.parametrize("weight_type", ["QUInt8", "QInt8"])
def test_dynamically_quantized_mlp(launcher, tmp_path, weight_type):
    """onnxruntime's quantize_dynamic on the MLP: every integer result equal, the f32 ones within 1e-5."""
    model = test_qint_ops.dynamically_quantized("mlp", weight_type, tmp_path)
    feeds = {"input": RNG.standard_normal((1, 1, 28, 28)).astype(np.float32)}
    got = pjrt_harness.run_model(pjrt_harness.bundle(launcher, model, tmp_path), model, feeds)
    for out, g, w in zip(model.graph.output, got, run_onnxruntime(model, feeds)):
        assert g.dtype == w.dtype, out.name
        if w.dtype.kind in "iu":
            np.testing.assert_array_equal(g, w, err_msg=out.name)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=out.name)


@pytest.mark.parametrize("qlinear", [False, True])
@pytest.mark.parametrize("case", sorted(test_qint_ops.CONV_INTEGER_CASES))
def test_conv_integer(launcher, tmp_path, case, qlinear):
    inputs = test_qint_ops.conv_integer_inputs(case, qlinear)
    model = single_op("QLinearConv" if qlinear else "ConvInteger", inputs, opset=10,
                      **test_qint_ops.CONV_INTEGER_CASES[case][2])
    pjrt_harness.check(launcher, model, {"x": inputs[0][1]}, tmp_path)


@pytest.mark.parametrize("dtype", ["u8", "i8"])
def test_max_pool_8bit(launcher, tmp_path, dtype):
    x = test_qint_ops.integer_operand(dtype, (1, 2, 7, 8))
    model = single_op("MaxPool", [("x", x, False)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    pjrt_harness.check(launcher, model, {"x": x}, tmp_path)


def _unpool_indices(pooled: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
    return test_compiler_ops.unpool_indices(pooled, out, [2] * (len(out) - 2), [2] * (len(out) - 2),
                                            [0] * 2 * (len(out) - 2))


# MaxPool's Indices, MaxUnpool, ReverseSequence, BitCast, bool ReduceMax/Min, 3-D Conv and ConvTranspose.
# Specials where test_compiler_ops has them (not for max pooling or convolutions).
MOVES = {  # case -> (op, inputs, attrs, opset, outputs, specials)
    "maxpool_indices": ("MaxPool", [("x", rand(2, 3, 7, 8), 0)],
                        dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), 17, 2, False),
    "maxpool_indices_dilated_column_major": ("MaxPool", [("x", rand(1, 2, 9, 10), 0)],
                                             dict(kernel_shape=[2, 3], dilations=[2, 1], strides=[2, 2], ceil_mode=1,
                                                  storage_order=1), 17, 2, False),
    "maxpool_indices_3d": ("MaxPool", [("x", rand(1, 2, 5, 6, 4), 0)],
                           dict(kernel_shape=[2, 3, 2], strides=[2, 2, 1], pads=[0, 1, 1, 1, 1, 0]), 17, 2, False),
    "max_unpool": ("MaxUnpool", [("x", rand(1, 2, 2, 3), 0), ("i", _unpool_indices((1, 2, 2, 3), (1, 2, 4, 6)), 0)],
                   dict(kernel_shape=[2, 2], strides=[2, 2]), 22, 1, True),
    "max_unpool_output_shape": ("MaxUnpool", [("x", rand(2, 1, 3, 3), 0),
                                              ("i", _unpool_indices((2, 1, 3, 3), (2, 1, 7, 7)), 1),
                                              ("shape", I([2, 1, 7, 7]), 1)],
                                dict(kernel_shape=[2, 2], strides=[2, 2]), 22, 1, True),
    "reverse_sequence": ("ReverseSequence", [("x", rand(4, 3, 2), 0), ("lens", I([4, 1, 3]), 0)], {}, 10, 1, True),
    "reverse_sequence_batch_first": ("ReverseSequence", [("x", rand(2, 5, 3), 0), ("lens", I([2, 5]), 1)],
                                     dict(batch_axis=0, time_axis=1), 10, 1, True),
    "bitcast_to_int32": ("BitCast", [("x", rand(3, 5), 0)], dict(to=TensorProto.INT32), 26, 1, True),
    "bitcast_to_float": ("BitCast", [("x", rand(3, 5).view(np.int32), 0)], dict(to=TensorProto.FLOAT), 26, 1, False),
    "reduce_max_bool": ("ReduceMax", [("x", RNG.uniform(size=(3, 4, 5)) > 0.3, 0), ("axes", I([1]), 1)],
                        dict(keepdims=0), 20, 1, False),
    "reduce_min_bool": ("ReduceMin", [("x", RNG.uniform(size=(3, 4, 5)) > 0.3, 0), ("axes", I([0, 2]), 1)], {}, 20,
                        1, False),
    "conv_3d": ("Conv", [("x", rand(2, 2, 7, 6, 5), 0), ("w", rand(3, 2, 3, 2, 3), 1), ("b", rand(3), 1)],
                dict(strides=[2, 1, 2], pads=[1, 0, 2, 2, 1, 0]), 17, 1, False),
    "conv_3d_grouped_dilated": ("Conv", [("x", rand(1, 4, 9, 5, 6), 0), ("w", rand(6, 2, 2, 3, 3), 1)],
                                dict(group=2, dilations=[3, 1, 2], pads=[0, 1, 2, 1, 1, 2]), 17, 1, False),
    "conv_transpose_3d": ("ConvTranspose", [("x", rand(1, 4, 3, 3, 4), 0), ("w", rand(4, 1, 2, 3, 2), 1)],
                          dict(group=2, strides=[2, 1, 2], pads=[1, 0, 1, 0, 1, 1], output_padding=[1, 0, 1]), 17, 1,
                          False),
}


@pytest.mark.parametrize("case", sorted(MOVES))
def test_moves_and_3d_convolutions(launcher, tmp_path, case):
    op, inputs, attrs, opset, outputs, specials = MOVES[case]
    model = single_op(op, [(n, a, bool(init)) for n, a, init in inputs], outputs, opset, **attrs)
    feeds = {n: a for n, a, init in inputs if not init}
    for i, case_feeds in enumerate([feeds, with_specials(feeds)] if specials else [feeds]):
        pjrt_harness.check(launcher, model, case_feeds, tmp_path / str(i))


def test_max_pool_then_unpool(launcher, tmp_path):
    x = rand(2, 16, 33, 40)
    pjrt_harness.check(launcher, test_compiler_ops.pool_unpool(x.shape), {"x": x}, tmp_path)


STATE_SPACE = {  # case -> (op, inputs (name, array, initializer), attrs); opset 27, which onnxruntime 1.31 lacks
    "causal_conv_silu_past": ("CausalConvWithState", [("x", rand(2, 3, 6), 0), ("w", rand(3, 1, 4), 1),
                                                      ("b", rand(3), 1), ("s", rand(2, 3, 3), 0)],
                              dict(activation="silu")),
    "linear_attention_gated_delta_gqa": ("LinearAttention",
                                         [("q", rand(2, 3, 8), 0), ("k", rand(2, 3, 4, lo=-0.5, hi=0.5), 0),
                                          ("v", rand(2, 3, 6), 0), ("s", rand(2, 1, 4, 6), 0),
                                          ("g", rand(2, 3, 1, lo=-1, hi=0), 0), ("beta", rand(2, 3, 1, lo=0, hi=1), 0)],
                                         dict(q_num_heads=2, kv_num_heads=1)),
}


@pytest.mark.parametrize("case", sorted(STATE_SPACE))
def test_state_space_ops_against_onnx_reference(launcher, tmp_path, case):
    """CausalConvWithState and LinearAttention (onnx's function bodies): onnx's reference is the oracle."""
    from onnx.reference import ReferenceEvaluator
    op, inputs, attrs = STATE_SPACE[case]
    model = single_op(op, [(n, a, bool(init)) for n, a, init in inputs], 2, 27, **attrs)
    feeds = {n: a for n, a, init in inputs if not init}
    got = pjrt_harness.run_model(pjrt_harness.bundle(launcher, model, tmp_path), model, feeds)
    for g, want in zip(got, ReferenceEvaluator(model).run(None, feeds), strict=True):
        test_compiler_ops.assert_close(g, want)
