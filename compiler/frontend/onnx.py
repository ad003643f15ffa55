"""ONNX importer: maps each ONNX node onto IR ops. Shapes and semantics live in the IR."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper, version_converter

from ..errors import CompileError
from ..ir.graph import DTYPES, NP_TO_DTYPE, Graph, Node, TensorType, Value
from .composites import COMPOSITES
from .composites_extra import COMPOSITES_EXTRA
from .composites_swish import COMPOSITES_SWISH
from .contrib import CONTRIB_MAPPERS, DOMAIN as CONTRIB_DOMAIN, ONNX_DOMAIN_EXTRAS
from .functions import FUNCTION_OPS, expand
from .sequence import SEQUENCE_MAPPERS
from .quant import MAPPERS as QUANT
from .weights import ONNX_DTYPES, inline_weights, onnx_dtype, safetensors_weights

# The ai.onnx opsets kiln accepts: up to the newest of the pinned onnx wheel. Between opset 23 and
# it, the ops kiln maps changed only in the types they accept (Cast's new round_mode attribute
# rounds to float8e8m0 only); tests/test_compiler_opsets.py checks that against onnx's schemas.
OPSETS = range(1, 29)
# Models older than this are converted to it by onnx's own version converter; the ops kiln maps
# changed only in the types they accept between it and the newest accepted opset.
NATIVE_OPSET = 13

# ONNX ops whose IR op has the same name and attributes.
SAME = {
    "Conv", "MaxPool", "AveragePool", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu",
    "Sigmoid", "Tanh", "Erf", "Gelu", "Softmax", "LogSoftmax", "BatchNormalization",
    "LRN", "Reshape", "Flatten", "Transpose", "Concat", "Split", "Slice", "Gather", "Unsqueeze", "Squeeze",
    "Identity", "Pow", "Sqrt", "Exp", "Neg", "HardSigmoid", "HardSwish", "Expand", "Where", "Shape",
    "ConstantOfShape", "Cast", "Log", "Abs", "Size", "Pad",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "CastLike", "Range", "Trilu",
    "DepthToSpace", "SpaceToDepth", "Tile", "EyeLike", "InstanceNormalization", "GroupNormalization", "Attention",
    "Mod", "Resize", "AffineGrid", "GridSample",
    "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Floor", "Ceil", "Round",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitShift",
}
# Indexing ops (ir/ops_index.py).
SAME |= {"GatherElements", "GatherND", "OneHot", "ScatterElements", "ScatterND", "Compress", "TensorScatter"}
# ConvTranspose as a Conv, Einsum as MatMuls (ir/ops_linear.py).
SAME |= {"ConvTranspose", "Einsum"}
# RotaryEmbedding (ir/ops_rotary.py).
SAME |= {"RotaryEmbedding"}
# MaxUnpool and ReverseSequence (ir/ops_unpool.py); BitCast, whose `to` is read as Cast's.
SAME |= {"MaxUnpool", "ReverseSequence", "BitCast"}


class Importer:
    def __init__(self, source: str, used: set[str], opset: int) -> None:
        self.source, self.opset = source, opset
        self.used = used  # names some node or the graph's outputs read
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.renames: dict[str, str] = {}  # names inside an inlined subgraph -> their unique names
        self.int_dtypes: dict[str, np.dtype] = {}  # constants' integer types before widening

    def get(self, name: str, node: str) -> Value | None:
        if name == "":
            return None
        name = self.renames.get(name, name)
        if name not in self.values:
            raise CompileError(f"node {node} reads undefined value {name} ({self.source})")
        return self.values[name]

    def emit(self, op: str, name: str, inputs: list[Value | None], outputs: list[str],
             attrs: dict | None = None) -> list[Value]:
        outs = []
        for o in outputs:
            v = Value(o)
            self.values[o] = v
            outs.append(v)
        self.nodes.append(Node(op, name, inputs, outs, attrs or {}))
        return outs

    def node(self, proto: onnx.NodeProto, index: int) -> None:
        name = proto.name or str(index)
        if not mappable(proto):
            raise CompileError(unsupported_message(proto, index, self.opset, self.source))
        if proto.op_type in FUNCTION_OPS:
            expand(self, proto, name)
            return
        attrs = {a.name: _attr(a) for a in proto.attribute}
        inputs = [self.get(i, name) for i in proto.input]
        mappers = CONTRIB_MAPPERS if proto.domain == CONTRIB_DOMAIN else MAPPERS
        mappers.get(proto.op_type, ONNX_DOMAIN_EXTRAS.get(proto.op_type))(self, name, inputs, list(proto.output),
                                                                          attrs)


def mappable(proto: onnx.NodeProto) -> bool:
    if proto.domain == CONTRIB_DOMAIN:
        return proto.op_type in CONTRIB_MAPPERS
    return proto.domain in ("", "ai.onnx") and (proto.op_type in MAPPERS or proto.op_type in FUNCTION_OPS
                                                 or proto.op_type in ONNX_DOMAIN_EXTRAS)


def unsupported_message(proto: onnx.NodeProto, index: int, opset: int, source: str) -> str:
    """One line: the op, its domain and opset, the node, and the nearest ops kiln does map."""
    name = proto.name or str(index)
    if proto.domain not in ("", "ai.onnx"):
        return (f"unsupported operator {proto.domain}.{proto.op_type} at node {name} ({source}); "
                f"kiln maps the ai.onnx domain and these {CONTRIB_DOMAIN} ops: {', '.join(sorted(CONTRIB_MAPPERS))}")
    near = difflib.get_close_matches(proto.op_type, sorted(MAPPERS), n=2, cutoff=0.6)
    hint = f"; nearest supported: {', '.join(near)}" if near else ""
    return f"unsupported operator {proto.op_type} (opset {opset}) at node {name} ({source}){hint}"


def _attr(a: onnx.AttributeProto):
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list):
        return tuple(x.decode() if isinstance(x, bytes) else x for x in v)
    return v


def _same(op: str) -> Callable:
    def mapper(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
        if op in ("Cast", "BitCast"):
            attrs = {"to": _cast_target(attrs["to"], name, op)}
        if op == "EyeLike" and "dtype" in attrs:
            attrs = dict(attrs, dtype=_cast_target(attrs["dtype"], name))
        im.emit(op, name, ins, outs, attrs)
    return mapper


def _cast_target(to: int, node: str, op: str = "Cast") -> str:
    dtype = np.dtype(ONNX_DTYPES.get(to, np.float16))
    if dtype not in NP_TO_DTYPE:
        raise CompileError(f"{op} node {node}: unsupported target type "
                           f"{onnx.TensorProto.DataType.Name(to)}")
    return NP_TO_DTYPE[dtype]


def _constant(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    key, value = next(iter(attrs.items()))
    if key not in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        raise CompileError(f"Constant node {name}: unsupported attribute {key}")
    data = np.asarray(value, np.float32 if "float" in key else None)
    if "int" in key:
        data = data.astype(np.int64)
    im.int_dtypes[outs[0]] = data.dtype
    im.values[outs[0]] = Value(outs[0], const=data)


def _chain(op: str) -> Callable:
    """Variadic Max/Min as a chain of binary IR ops."""
    def mapper(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
        acc = ins[0]
        for i, v in enumerate(ins[1:]):
            last = i == len(ins) - 2
            acc = im.emit(op, name, [acc, v], [outs[0] if last else f"{outs[0]}.{i}"])[0]
        if len(ins) == 1:
            im.emit("Identity", name, ins, outs)
    return mapper


def _variadic(op: str, mean: bool = False) -> Callable:
    """Sum/Mean of any number of broadcasting inputs as a chain of binary IR ops."""
    def mapper(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
        total = outs[0] if not mean else f"{outs[0]}.sum"
        if len(ins) == 1:
            acc = im.emit("Identity", name, ins, [total])[0]
        else:
            _chain(op)(im, name, ins, [total], attrs)
            acc = im.values[total]
        if mean:
            scale = Value(f"{outs[0]}.scale", const=np.float32(1.0 / len(ins)))
            im.emit("Mul", name, [acc, scale], outs)
    return mapper


def _dropout(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """Inference: the identity, and a mask (when read) that keeps every element."""
    training = ins[2] if len(ins) > 2 else None
    if training is not None and (training.const is None or bool(np.asarray(training.const).ravel()[0])):
        raise CompileError(f"Dropout node {name}: training_mode must be a constant false for inference "
                           f"({im.source})")
    im.emit("Identity", name, ins[:1], outs[:1])
    if len(outs) < 2 or outs[1] not in im.used:
        return
    if im.opset < 12:
        raise CompileError(f"Dropout node {name}: its mask output {outs[1]} is read, and before opset 12 ONNX "
                           f"leaves its inference value undefined ({im.source})")
    shape = im.emit("Shape", name, ins[:1], [f"{outs[1]}.shape"])
    im.emit("ConstantOfShape", name, shape, outs[1:2], {"value": np.array([True])})


def _clip(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    lo = ins[1] if len(ins) > 1 else None
    hi = ins[2] if len(ins) > 2 else None
    if "min" in attrs:
        lo = Value(f"{outs[0]}.min", const=np.float32(attrs["min"]))
    if "max" in attrs:
        hi = Value(f"{outs[0]}.max", const=np.float32(attrs["max"]))
    x = ins[0]
    if lo is not None:
        x = im.emit("Max", name, [x, lo], [outs[0] if hi is None else f"{outs[0]}.lo"])[0]
    if hi is not None:
        im.emit("Min", name, [x, hi], outs)
    elif lo is None:
        im.emit("Identity", name, [x], outs)


def _layer_norm(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """LayerNormalization; its Mean and InvStdDev outputs, when read, are computed beside it over x
    flattened at `axis` and shaped [*x.shape[:axis], 1, ..., 1]."""
    im.emit("LayerNormalization", name, ins, outs[:1], attrs)
    stash = [(o, i) for i, o in enumerate(outs[1:3]) if o in im.used]
    if not stash:
        return
    axis, x, tmp = attrs.get("axis", -1), ins[0], lambda s: f"{outs[0]}.{s}"
    flat = im.emit("Flatten", name, [x], [tmp("flat")], {"axis": axis})[0]
    mean = im.emit("ReduceMean", name, [flat], [tmp("mean")], {"axes": (1,), "keepdims": 1})[0]
    dev = im.emit("Sub", name, [flat, mean], [tmp("dev")])[0]
    var = im.emit("ReduceMean", name, [im.emit("Mul", name, [dev, dev], [tmp("sq")])[0]], [tmp("var")],
                  {"axes": (1,), "keepdims": 1})[0]
    eps = Value(tmp("eps"), const=np.float32(attrs.get("epsilon", 1e-5)))
    std = im.emit("Sqrt", name, im.emit("Add", name, [var, eps], [tmp("vareps")]), [tmp("std")])[0]
    inv = im.emit("Div", name, [Value(tmp("one"), const=np.float32(1)), std], [tmp("inv")])[0]
    head = im.emit("Shape", name, [x], [tmp("head")], {"end": axis})[0]
    tail = im.emit("Shape", name, [x], [tmp("tail")], {"start": axis})[0]
    ones = im.emit("ConstantOfShape", name, im.emit("Shape", name, [tail], [tmp("tail_rank")]), [tmp("ones")],
                   {"value": np.ones(1, np.int64)})[0]
    target = im.emit("Concat", name, [head, ones], [tmp("stash_shape")], {"axis": 0})[0]
    for out, i in stash:
        im.emit("Reshape", name, [(mean, inv)[i], target], [out])


def _global_pool(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    im.emit("ReduceMean", name, ins, outs, {"global_pool": True, "keepdims": 1})


def _dft(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """DFT-20 takes axis as an input whose default, -2, differs from DFT-17's attribute default 1."""
    im.emit("DFT", name, ins, outs, dict(attrs, axis=-2) if im.opset >= 20 else attrs)


MAPPERS: dict[str, Callable] = {op: _same(op) for op in SAME}
MAPPERS.update(Constant=_constant, Max=_chain("Max"), Min=_chain("Min"), Clip=_clip,
               GlobalAveragePool=_global_pool, Dropout=_dropout, Sum=_variadic("Add"),
               Mean=_variadic("Add", mean=True), LayerNormalization=_layer_norm, **COMPOSITES, **QUANT)
MAPPERS["Scatter"] = _same("ScatterElements")  # deprecated (opset 9-10) alias
MAPPERS.update(COMPOSITES_EXTRA)
MAPPERS.update(COMPOSITES_SWISH)
MAPPERS.update(SEQUENCE_MAPPERS)
MAPPERS["DFT"] = _dft
MAPPERS["STFT"] = _same("STFT")
MAPPERS["MelWeightMatrix"] = _same("MelWeightMatrix")


def _roi_align(im: Importer, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """RoiAlign-10 has no coordinate_transformation_mode: it shifts no half pixel, as opset 16's
    output_half_pixel (opset 16's default is half_pixel)."""
    if im.opset < 16:
        attrs = dict(attrs, coordinate_transformation_mode="output_half_pixel")
    im.emit("RoiAlign", name, ins, outs, attrs)


MAPPERS["RoiAlign"] = _roi_align
MAPPERS["DeformConv"] = _same("DeformConv")
MAPPERS["Det"] = _same("Det")


Shapes = dict[str, tuple[int, ...]]
Values = dict[str, tuple[float, ...]]


def _input_type(vi: onnx.ValueInfoProto, batch: int, given: Shapes, named: dict[str, int],
                source: str) -> TensorType:
    """The input's static type: its fixed dims, the dims `given` for it or named alike on another
    given input, else `batch` for a symbolic leading dim."""
    t = vi.type.tensor_type
    dtype = onnx_dtype(t.elem_type, f"input {vi.name}")
    if dtype not in NP_TO_DTYPE:
        raise CompileError(f"input {vi.name} has unsupported dtype {dtype}")
    if vi.name in given:
        return TensorType(NP_TO_DTYPE[dtype], given[vi.name])
    shape = []
    for i, d in enumerate(t.shape.dim):
        if d.HasField("dim_value"):
            shape.append(d.dim_value)
        elif _shared_name(d) in named:
            shape.append(named[d.dim_param])
        elif i == 0:
            shape.append(batch)
        else:
            raise CompileError(f"input {vi.name} has symbolic dimension {d.dim_param or i} ({source}); "
                               f"fix it with model(input_shapes = {{\"{vi.name}\": [...]}}) "
                               f"or --input-shape {vi.name}=D0,D1,...")
    return TensorType(NP_TO_DTYPE[dtype], tuple(shape))


def _shared_name(d: onnx.TensorShapeProto.Dimension) -> str:
    """The dim's symbolic name if it ties it to other dims of that name. Paddle's exporter names every
    unknown dim "?", which says nothing about equality."""
    return "" if d.dim_param == "?" else d.dim_param


def _check_names(attr: str, given: dict, inputs: list[onnx.ValueInfoProto], source: str) -> None:
    unknown = sorted(set(given) - {vi.name for vi in inputs})
    if unknown:
        raise CompileError(f"{attr} names {unknown[0]}, which is not an input of {source} "
                           f"(inputs: {', '.join(vi.name for vi in inputs)})")


def _named_dims(inputs: list[onnx.ValueInfoProto], given: Shapes, source: str) -> dict[str, int]:
    """Symbolic dim names -> sizes, read off the shapes given for the inputs that use them."""
    by_name = {vi.name: vi for vi in inputs}
    _check_names("input_shapes", given, inputs, source)
    named: dict[str, int] = {}
    for name, shape in given.items():
        dims = by_name[name].type.tensor_type.shape.dim
        if len(dims) != len(shape) or any(s < 1 for s in shape):
            raise CompileError(f"input_shapes gives {name} the shape {list(shape)}; {source} declares rank "
                               f"{len(dims)} and every dim must be positive")
        for d, size in zip(dims, shape):
            if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != size:
                raise CompileError(f"input_shapes gives {name} the shape {list(shape)}; {source} fixes "
                                   f"{[x.dim_value or x.dim_param for x in dims]}")
            if _shared_name(d) and named.setdefault(d.dim_param, size) != size:
                raise CompileError(f"input_shapes gives the symbolic dim {d.dim_param} two sizes: "
                                   f"{named[d.dim_param]} and {size}")
    return named


def _fixed_value(vi: onnx.ValueInfoProto, values: tuple[float, ...], given: Shapes, named: dict[str, int],
                 source: str) -> np.ndarray:
    """The build-time constant `values` for input `vi`: its declared dtype, its shape with at most
    one dim left unknown (taken from the value count)."""
    t = vi.type.tensor_type
    dtype = onnx_dtype(t.elem_type, f"input {vi.name}")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0
            else given[vi.name][i] if vi.name in given
            else named.get(_shared_name(d), -1) for i, d in enumerate(t.shape.dim)]
    known = int(np.prod([d for d in dims if d > 0]))
    unknown = dims.count(-1)
    if unknown > 1 or len(values) % known or (unknown == 0 and len(values) != known) or not values:
        declared = [d.dim_value or d.dim_param or "?" for d in t.shape.dim]
        raise CompileError(f"input_values gives {vi.name} {len(values)} value(s); {source} declares its shape "
                           f"{declared}")
    if np.dtype(dtype).kind in "iub" and not all(float(v).is_integer() for v in values):
        raise CompileError(f"input_values gives {vi.name} {list(values)}; {source} declares it "
                           f"{np.dtype(dtype).name}, which holds whole numbers only")
    try:
        shape = [d if d > 0 else len(values) // known for d in dims]
        return np.array(values).astype(np.float32 if dtype == np.float64 else dtype).reshape(shape)
    except (ValueError, OverflowError) as e:
        raise CompileError(f"input_values gives {vi.name} values that are not {np.dtype(dtype).name}: {e}") \
            from None


def load_onnx(path: Path, weights: Path | None = None, batch: int = 1, input_shapes: Shapes | None = None,
              input_values: Values | None = None) -> Graph:
    """Parse `path` (and optionally its safetensors weights) into an untyped-node IR graph;
    `input_shapes` fixes inputs' symbolic dims and `input_values` fixes inputs' values at build
    time (the input becomes a constant), both by input name."""
    source = path.name
    model, opset = read_model(path, weights)
    if batch < 1:
        raise CompileError(f"batch must be positive, got {batch}")
    data = safetensors_weights(model, weights) if weights else inline_weights(model, path.parent)
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    im = Importer(source, used, opset)
    for name, array in data.items():
        im.int_dtypes[name] = array.dtype
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        im.values[name] = Value(name, const=array)
    inputs = []
    graph_inputs = [vi for vi in model.graph.input if vi.name not in im.values]
    given = {k: tuple(v) for k, v in (input_shapes or {}).items()}
    named = _named_dims(graph_inputs, given, source)
    fixed = input_values or {}
    _check_names("input_values", fixed, graph_inputs, source)
    for vi in graph_inputs:
        if vi.name in fixed:
            im.values[vi.name] = Value(vi.name, const=_fixed_value(vi, fixed[vi.name], given, named, source))
            im.int_dtypes[vi.name] = im.values[vi.name].const.dtype
            continue
        v = Value(vi.name, _input_type(vi, batch, given, named, source))
        if v.type.numel == 0:  # its content is known (nothing): what reads it folds
            v.const = np.zeros(v.type.shape, DTYPES[v.type.dtype])
        im.values[vi.name] = v
        inputs.append(v)
    for i, n in enumerate(model.graph.node):
        im.node(n, i)
    outputs = [im.get(o.name, "graph output") for o in model.graph.output]
    graph = Graph(source, inputs, outputs, im.nodes)
    graph.converted_from = opset if opset < NATIVE_OPSET else None
    graph.fixed_inputs = {name: im.values[name].const for name in fixed}
    return graph


def unsupported_nodes(path: Path) -> list[str]:
    """A line for every node kiln cannot map, in graph order (not only the first)."""
    model, opset = read_model(path, None, load_external_data=False)
    return [unsupported_message(n, i, opset, path.name) for i, n in enumerate(model.graph.node) if not mappable(n)]


def read_model(path: Path, weights: Path | None, load_external_data: bool = True) -> tuple[onnx.ModelProto, int]:
    """The parsed model at an opset kiln maps (converted when older), and the opset it was written in."""
    source = path.name
    if not path.is_file():
        raise CompileError(f"cannot read {path}: no such file")
    if weights is not None and not weights.is_file():
        raise CompileError(f"cannot read {weights}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=weights is None and load_external_data)
    except (DecodeError, OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as e:
        raise CompileError(f"malformed ONNX file {source}: {str(e).splitlines()[0] if str(e) else e!r}") \
            from None
    if not model.graph.node and not model.graph.output:
        raise CompileError(f"malformed ONNX file {source}: empty graph")
    opset = model_opset(model)
    if opset == 0 and model.graph.node:
        domains = ", ".join(sorted(o.domain for o in model.opset_import)) or "none"
        raise CompileError(f"{source} imports no ai.onnx opset (imports: {domains}); "
                           "operators of other domains are not supported")
    if opset not in OPSETS:
        raise CompileError(f"{source} uses opset {opset}; supported: {OPSETS.start}-{OPSETS.stop - 1}")
    return (_convert(model, opset, source) if opset < NATIVE_OPSET else model), opset


def model_opset(model: onnx.ModelProto) -> int:
    versions = {o.domain: o.version for o in model.opset_import}
    return versions.get("", versions.get("ai.onnx", 0))


def _convert(model: onnx.ModelProto, opset: int, source: str) -> onnx.ModelProto:
    """The model at NATIVE_OPSET, by onnx.version_converter (its adapters rewrite changed ops)."""
    try:
        converted = version_converter.convert_version(model, NATIVE_OPSET)
    except Exception as e:  # the converter raises RuntimeError, ValueError or its own C++ errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CompileError(f"{source} uses opset {opset} and onnx's version converter cannot bring it to "
                           f"{NATIVE_OPSET}: {reason}") from None
    if opset < 11:
        _asymmetric_resize(converted)
    return converted


def _asymmetric_resize(model: onnx.ModelProto) -> None:
    """Upsample and Resize before opset 11 map output to input coordinates asymmetrically and
    round nearest down (as onnxruntime runs them); the converter's Resize-11 would default to
    half_pixel and round_prefer_floor."""
    for node in model.graph.node:
        if node.op_type == "Resize" and not any(a.name == "coordinate_transformation_mode" for a in node.attribute):
            node.attribute.extend([helper.make_attribute("coordinate_transformation_mode", "asymmetric"),
                                   helper.make_attribute("nearest_mode", "floor")])
