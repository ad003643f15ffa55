"""ONNX ops that onnx defines as functions of other ops (the loss functions, the window functions,
CenterCropPad), imported as the function body onnx builds for the node: its nodes are mapped one
by one, with internal values renamed under the node's name and attribute references resolved from
the node (or the schema's default)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import onnx
from onnx import helper

from ..errors import CompileError
from ..ir.graph import DTYPES
from .sequence import _typed

if TYPE_CHECKING:
    from .onnx import Importer

# op -> the element type of each input when the importer does not know it yet (its schema's usual one)
FUNCTION_OPS = {
    "NegativeLogLikelihoodLoss": ("f32", "i64", "f32"),
    "SoftmaxCrossEntropyLoss": ("f32", "i64", "f32"),
    "CenterCropPad": ("f32", "i64"),
    "HannWindow": ("i64",),
    "HammingWindow": ("i64",),
    "BlackmanWindow": ("i64",),
    "CausalConvWithState": ("f32", "f32", "f32", "f32"),
    "LinearAttention": ("f32",) * 6,
}


def _input_types(im: Importer, proto: onnx.NodeProto) -> list[onnx.TypeProto]:
    """Each input's type as far as the importer knows it: its static shape when constants and input
    shapes fold it (CausalConvWithState's body takes its group count from the weight's shape,
    LinearAttention's needs its inputs' ranks), else the schema's usual element type alone."""
    types = []
    for name, default in zip(proto.input, FUNCTION_OPS[proto.op_type]):
        value = im.get(name, proto.name) if name else None
        if value is not None and value.type is None:
            _typed(im, value)
        shape = None
        if value is not None and value.type is not None:
            default, shape = value.type.dtype, value.type.shape
        dtype = helper.np_dtype_to_tensor_dtype(np.dtype(DTYPES[default]))
        types.append(helper.make_tensor_type_proto(dtype, shape))
    return types


def function_body(im: Importer, proto: onnx.NodeProto, name: str) -> onnx.FunctionProto:
    schema = onnx.defs.get_schema(proto.op_type, im.opset)
    if schema.has_function:
        return schema.function_body
    if not schema.has_context_dependent_function:
        raise CompileError(f"unsupported operator {proto.op_type} (opset {im.opset}) at node {name} "
                           f"({im.source}); onnx defines no function for it there")
    types = _input_types(im, proto)
    _check_node(im, proto, name, schema, types)
    body = onnx.FunctionProto()
    body.ParseFromString(schema.get_context_dependent_function(
        proto.SerializeToString(), [t.SerializeToString() for t in types]))
    if not body.node:
        raise CompileError(f"unsupported operator {proto.op_type} (opset {im.opset}) at node {name} "
                           f"({im.source}): onnx builds its function body only for inputs of known shapes "
                           "and a supported combination of attributes")
    return body


def _check_node(im: Importer, proto: onnx.NodeProto, name: str, schema: onnx.defs.OpSchema,
                types: list[onnx.TypeProto]) -> None:
    """onnx's own inference for the node: it refuses attribute values and input combinations the
    function body would be built wrong for (LinearAttention's gated rule without decay)."""
    given = {i: t for i, t in zip(proto.input, types) if i}
    try:
        onnx.shape_inference.infer_node_outputs(schema, proto, given)
    except onnx.shape_inference.InferenceError as e:
        reason = str(e).split("] ", 1)[-1].strip().splitlines()[0]
        raise CompileError(f"{proto.op_type} node {name} (opset {im.opset}): {reason} ({im.source})") from None


def _inlined(node: onnx.NodeProto, rename: Callable[[str], str], attrs: dict, prefix: str) -> onnx.NodeProto:
    out = onnx.NodeProto()
    out.CopyFrom(node)
    out.name = prefix + (node.name or node.op_type)
    out.input[:] = [rename(i) for i in node.input]
    out.output[:] = [rename(o) for o in node.output]
    kept = []
    for a in node.attribute:
        if not a.ref_attr_name:
            kept.append(_captures_renamed(a, rename))
        elif a.ref_attr_name in attrs:
            resolved = onnx.AttributeProto()
            resolved.CopyFrom(attrs[a.ref_attr_name])
            resolved.name = a.name
            kept.append(resolved)
    del out.attribute[:]
    out.attribute.extend(kept)
    return out


def _captures_renamed(a: onnx.AttributeProto, rename: Callable[[str], str]) -> onnx.AttributeProto:
    """The attribute with the values its subgraphs read from the function body renamed."""
    if a.type not in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return a
    out = onnx.AttributeProto()
    out.CopyFrom(a)
    for graph in [out.g] if out.type == onnx.AttributeProto.GRAPH else list(out.graphs):
        _rename_captured(graph, rename, set())
    return out


def _rename_captured(graph: onnx.GraphProto, rename: Callable[[str], str], outer: set[str]) -> None:
    """Rename, in place, every name `graph` (and its nested subgraphs) reads but does not define."""
    defined = set(outer) | {v.name for v in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        node.input[:] = [i if not i or i in defined else rename(i) for i in node.input]
        for a in node.attribute:
            for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                _rename_captured(sub, rename, defined)
        defined.update(node.output)
    for v in graph.output:
        if v.name not in defined:
            v.name = rename(v.name)


def expand(im: Importer, proto: onnx.NodeProto, name: str) -> None:
    """Map the nodes of `proto`'s function body in its place."""
    body, prefix = function_body(im, proto, name), f"{name}/"
    given = list(proto.input) + [""] * (len(body.input) - len(proto.input))
    formal = dict(zip(body.input, given)) | dict(zip(body.output, proto.output))
    attrs = _defaults(onnx.defs.get_schema(proto.op_type, im.opset)) | {a.name: a for a in proto.attribute}

    def rename(v: str) -> str:
        return formal.get(v, prefix + v if v else "")

    for i, node in enumerate(body.node):
        im.node(_inlined(node, rename, attrs, prefix), i)


def _defaults(schema: onnx.defs.OpSchema) -> dict[str, onnx.AttributeProto]:
    """The schema's attributes that have a default, for the body's references the node leaves unset."""
    return {name: a.default_value for name, a in schema.attributes.items()
            if a.default_value.type != onnx.AttributeProto.UNDEFINED}
