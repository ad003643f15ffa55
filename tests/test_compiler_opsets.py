"""Models of old opsets (the ONNX model zoo is mostly opset 7-12) are converted at import by onnx's
version converter and must compute what onnxruntime computes running them at their own opset."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.compiler.errors import CompileError
from kiln.compiler.frontend.onnx import MAPPERS, OPSETS, load_onnx
from kiln.compiler.inspect import inspect_model
from onnx_models import check

RNG = np.random.default_rng(7)


def tensor(name: str, *shape: int, lo: float = -0.5, hi: float = 0.5) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.uniform(lo, hi, shape).astype(np.float32), name)


def cnn(opset: int) -> onnx.ModelProto:
    """Conv, BatchNormalization, Clip, MaxPool, Slice, Flatten, Gemm and Softmax as exporters wrote
    them at `opset` (attributes that later opsets turned into inputs stay attributes)."""
    inits = [tensor("w", 4, 3, 3, 3), tensor("b", 4), tensor("s", 4, lo=0.5, hi=1.5), tensor("bb", 4),
             tensor("m", 4), tensor("v", 4, lo=0.5, hi=1.0), tensor("fw", 10, 32), tensor("fb", 10)]
    if opset < 11:
        clip = helper.make_node("Clip", ["bn"], ["r"], min=0.0, max=6.0)
    else:
        clip = helper.make_node("Clip", ["bn", "lo", "hi"], ["r"])
        inits += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
    if opset < 10:
        slice_ = helper.make_node("Slice", ["p"], ["sl"], starts=[1], ends=[3], axes=[1])
    else:
        slice_ = helper.make_node("Slice", ["p", "st", "en", "ax"], ["sl"])
        inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("st", [1]), ("en", [3]), ("ax", [1]))]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"], epsilon=1e-5),
        clip,
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        slice_,
        helper.make_node("Flatten", ["sl"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7 if opset > 11 else 4)
    onnx.checker.check_model(model)
    return model


def softmax_4d(opset: int) -> onnx.ModelProto:
    """Before opset 13 Softmax normalised over the flattened axes from `axis` on; since 13 over one axis."""
    node = helper.make_node("Softmax", ["x"], ["y"], axis=1)
    graph = helper.make_graph([node], "softmax", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 5])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)


@pytest.mark.parametrize("opset", [7, 8, 9, 10, 11, 12, 13, 17, 21, 22, 23, 24, 25, 26])
def test_cnn_at_every_accepted_opset(tmp_path, opset):
    check(cnn(opset), {"x": RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)}, tmp_path)


@pytest.mark.parametrize("opset", [11, 12])
def test_old_softmax_semantics_survive_the_conversion(tmp_path, opset):
    check(softmax_4d(opset), {"x": RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)}, tmp_path)


def test_inspect_says_the_model_was_converted(tmp_path):
    path = tmp_path / "old.onnx"
    onnx.save(cnn(9), path)
    assert load_onnx(path).converted_from == 9
    assert "converted from opset 9 to 13 by onnx.version_converter" in inspect_model(path)


def test_opsets_outside_the_range_are_one_line(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(softmax_4d(29), path)
    with pytest.raises(CompileError, match=r"^m.onnx uses opset 29; supported: 1-28$"):
        load_onnx(path)


def _old_op(op: str, inputs: dict[str, np.ndarray], opset: int, **attrs) -> onnx.ModelProto:
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for n, a in inputs.items()]
    node = helper.make_node(op, list(inputs), ["y"], **attrs)
    graph = helper.make_graph([node], op.lower(), vis, [helper.make_empty_tensor_value_info("y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)


def _softmax_flat(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


X = RNG.uniform(-2, 2, (2, 3, 4, 4)).astype(np.float32)
B = RNG.integers(0, 2, (3, 4)).astype(np.bool_)
# onnxruntime runs opset 7 and later only, and onnx's reference lacks most opset 1-6 kernels: the
# oracle is numpy, written from the opset's own operator spec.
BEFORE_7 = [
    ("Not", {"x": B}, 1, {}, lambda x: ~x),
    ("Relu", {"x": X}, 1, dict(consumed_inputs=[0]), lambda x: np.maximum(x, 0)),
    ("Softmax", {"x": X}, 1, {}, _softmax_flat),  # over the axes from 1 on, flattened
    ("Reshape", {"x": X}, 1, dict(shape=[6, -1]), lambda x: x.reshape(6, -1)),
    ("Concat", {"a": X, "b": X}, 1, {}, lambda a, b: np.concatenate([a, b], axis=1)),  # axis defaulted to 1
    ("MaxPool", {"x": X}, 1, dict(kernel_shape=[2, 2], strides=[2, 2]),
     lambda x: x.reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5))),
    ("Upsample", {"x": X}, 1, dict(height_scale=2.0, width_scale=3.0, mode="nearest"),
     lambda x: x.repeat(2, axis=2).repeat(3, axis=3)),
]


@pytest.mark.parametrize("op,inputs,opset,attrs,want", BEFORE_7, ids=[c[0] for c in BEFORE_7])
def test_opsets_before_7_are_converted(tmp_path, op, inputs, opset, attrs, want):
    from onnx_models import assert_close, kiln_run

    path = tmp_path / "old.onnx"
    onnx.save(_old_op(op, inputs, opset, **attrs), path)
    assert load_onnx(path).converted_from == opset
    assert_close(kiln_run(_old_op(op, inputs, opset, **attrs), inputs, tmp_path)[0], want(*inputs.values()))


def test_opset_6_the_converter_cannot_bring_is_one_line(tmp_path):
    path = tmp_path / "m.onnx"
    model = _old_op("Add", {"a": X, "b": X[0, :, 0, 0]}, 6, broadcast=1, axis=1)
    onnx.save(model, path)
    with pytest.raises(CompileError, match=r"^m.onnx uses opset 6 and onnx's version converter cannot bring it "
                                           r"to 13: [^\n]+$"):
        load_onnx(path)


def _signature(op: str, opset: int) -> tuple:
    schema = onnx.defs.get_schema(op, opset)
    attrs = {name: str(a.default_value) for name, a in schema.attributes.items()
             if name not in TYPE_ONLY_ATTRS and (op, name) not in HANDLED_ADDITIONS}
    inputs = [(i.name, i.option) for i in schema.inputs if (op, i.name) not in HANDLED_ADDITIONS]
    return attrs, inputs, [(o.name, o.option) for o in schema.outputs]


# Cast's round_mode (opset 24) rounds to float8e8m0, a type kiln does not cast to; Range's stash_type
# (opset 27) is the intermediate type for float16/bfloat16 ranges, which kiln widens to f32.
TYPE_ONLY_ATTRS = {"round_mode", "stash_type"}
# Attributes and optional inputs newer opsets added, whose absence keeps the old meaning: kiln
# implements them (SpaceToDepth's mode, Attention's sliding windows and per-batch key lengths).
HANDLED_ADDITIONS = {("SpaceToDepth", "mode"), ("Attention", "left_window_size"), ("Attention", "right_window_size"),
                     ("Attention", "nonpad_kv_seqlen")}


@pytest.mark.parametrize("op", sorted(MAPPERS))
def test_mapped_ops_change_only_types_above_the_native_range(op):
    """Models above opset 23 are read as they are: every op kiln maps must mean the same there
    (from the op's first opset, for an op younger than 23: CumProd, TensorScatter)."""
    newest = OPSETS.stop - 1
    first = min(s.since_version for s in onnx.defs.get_all_schemas_with_history() if s.name == op and not s.domain)
    start = max(23, first)
    assert _signature(op, start) == _signature(op, newest), f"{op} changed between opset {start} and {newest}"



def upsample(opset: int, op: str, mode: str) -> onnx.ModelProto:
    """Upsample (opsets 7-9: scales an attribute, then an input) and Resize-10, which the converter
    brings to Resize-13 with the asymmetric, floor-rounding semantics onnxruntime gives them."""
    scales = [1.0, 1.0, 3.0, 2.5] if mode == "linear" else [1.0, 1.0, 3.0, 2.0]
    inits = [] if opset < 9 else [numpy_helper.from_array(np.array(scales, np.float32), "s")]
    attrs = dict(mode=mode, **({"scales": scales} if opset < 9 else {}))
    node = helper.make_node(op, ["x"] + ([] if opset < 9 else ["s"]), ["y"], **attrs)
    graph = helper.make_graph([node], "up", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=4)


@pytest.mark.parametrize("opset,op", [(7, "Upsample"), (8, "Upsample"), (9, "Upsample"), (10, "Resize")])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_and_resize_10_keep_their_semantics(tmp_path, opset, op, mode):
    check(upsample(opset, op, mode), {"x": RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)}, tmp_path)
