"""QuantizeLinear/DequantizeLinear as the f32 arithmetic onnxruntime does: round(x / scale) + zero
point clamped to the type's range; (q - zero point) * scale. Dequantizing constant weights folds
at build time. Levels between QuantizeLinear and DequantizeLinear stay f32; levels that leave such a pair
(a graph output, another op's input) become a real uint8/int8 tensor."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir.graph import Graph, Node, Patch, TensorType, Value
from ..ir.ops_quant import INTEGER_LEVELS, computed, quant_params


def _step(graph: Graph, nodes: list[Node], node: Node, op: str, inputs: list[Value], **attrs) -> Value:
    out = graph.value(f"{node.outputs[0].name}.{op.lower()}")
    nodes.append(Node(op, node.name, inputs, [out], attrs))
    return out


def _integer_levels(graph: Graph, node: Node) -> str | None:
    """The 8-bit dtype QuantizeLinear's levels take when they leave a QDQ pair (a graph output, or
    read by another op), else None; 16-bit levels stay between QuantizeLinear and DequantizeLinear."""
    y = node.outputs[0]
    readers = [n for n in graph.consumers().get(y, []) if n.op != "DequantizeLinear"]
    if not (y in graph.outputs or readers):
        return None
    dtype = INTEGER_LEVELS.get((node.attrs["lo"], node.attrs["hi"]))
    if dtype is None:
        where = "is a graph output" if y in graph.outputs else f"feeds {readers[0].op} node {readers[0].name}"
        raise CompileError(f"QuantizeLinear node {node.name}: its 16-bit quantized output {where}; kiln has "
                           f"uint8/int8 tensors and compiles 16-bit levels only between QuantizeLinear and "
                           f"DequantizeLinear (QDQ models)")
    return dtype


def _scalar_f32(graph: Graph, nodes: list[Node], node: Node, v: Value) -> Value:
    return _step(graph, nodes, node, "Reshape", [_step(graph, nodes, node, "Cast", [v], to="f32")], shape=())


def _computed(graph: Graph, node: Node) -> Patch:
    """The same f32 steps with a run-time scale and zero point, to and from real 8-bit tensors."""
    x, nodes, y = node.inputs[0], [], node.outputs[0]
    s = _scalar_f32(graph, nodes, node, node.inputs[1])
    zp = node.inputs[2] if len(node.inputs) > 2 else None
    z = _scalar_f32(graph, nodes, node, zp) if zp is not None else graph.const("zero_point", np.float32(0))
    if node.op == "DequantizeLinear":
        diff = _step(graph, nodes, node, "Sub", [_step(graph, nodes, node, "Cast", [x], to="f32"), z], exact=1)
        nodes.append(Node("Mul", node.name, [diff, s], [y], {"exact": 1}))
        return Patch(nodes)
    q = _step(graph, nodes, node, "Add", [_step(graph, nodes, node, "Round", [
        _step(graph, nodes, node, "Div", [x, s], exact=1)]), z])
    q = _step(graph, nodes, node, "Max", [q, graph.const("lo", np.float32(node.attrs["lo"]))])
    q = _step(graph, nodes, node, "Min", [q, graph.const("hi", np.float32(node.attrs["hi"]))])
    nodes.append(Node("Cast", node.name, [q], [y], {"to": y.type.dtype}))
    return Patch(nodes)


def quant(graph: Graph, node: Node) -> Patch | None:
    if node.op not in ("QuantizeLinear", "DequantizeLinear"):
        return None
    if computed(node):
        return _computed(graph, node)
    scale, zp = quant_params(node)
    x, nodes = node.inputs[0], []
    s, z = graph.const("scale", scale), graph.const("zero_point", zp)
    integer = _integer_levels(graph, node) if node.op == "QuantizeLinear" else None
    if node.op == "QuantizeLinear":
        q = _step(graph, nodes, node, "Add", [_step(graph, nodes, node, "Round", [
            _step(graph, nodes, node, "Div", [x, s], exact=1)]), z])
        q = _step(graph, nodes, node, "Max", [q, graph.const("lo", np.float32(node.attrs["lo"]))])
        r = _step(graph, nodes, node, "Min", [q, graph.const("hi", np.float32(node.attrs["hi"]))])
    elif x.type.dtype == "f32":
        r = _step(graph, nodes, node, "Mul", [_step(graph, nodes, node, "Sub", [x, z], exact=1), s], exact=1)
    else:
        z = graph.const("zero_point", zp.astype(np.int64 if x.type.dtype == "i64" else np.int32))
        if x.type.dtype in ("i8", "u8"):
            x = _step(graph, nodes, node, "Cast", [x], to="i32")
        diff = _step(graph, nodes, node, "Cast", [_step(graph, nodes, node, "Sub", [x, z])], to="f32")
        r = _step(graph, nodes, node, "Mul", [diff, s])
    y = node.outputs[0]
    if integer:
        r = _step(graph, nodes, node, "Reshape", [r], shape=y.type.shape)
        nodes.append(Node("Cast", node.name, [r], [y], {"to": integer}))
        # typed now, not at the next inference: a DequantizeLinear reading y is rewritten in this same pass
        y.type = TensorType(integer, y.type.shape)
    else:
        nodes.append(Node("Reshape", node.name, [r], [y], {"shape": y.type.shape}))
    return Patch(nodes)
