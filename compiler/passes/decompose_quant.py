"""QuantizeLinear/DequantizeLinear as the f32 arithmetic onnxruntime does: round(x / scale) + zero
point clamped to the type's range; (q - zero point) * scale. Dequantizing constant weights folds
at build time; a computed quantized tensor must only be dequantized (QDQ): QuantizeLinear gives f32 levels."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_quant import quant_params


def _step(graph: Graph, nodes: list[Node], node: Node, op: str, inputs: list[Value], **attrs) -> Value:
    out = graph.value(f"{node.outputs[0].name}.{op.lower()}")
    nodes.append(Node(op, node.name, inputs, [out], attrs))
    return out


def _check_qdq(graph: Graph, node: Node) -> None:
    y = node.outputs[0]
    readers = [n for n in graph.consumers().get(y, []) if n.op != "DequantizeLinear"]
    if y in graph.outputs or readers:
        where = "is a graph output" if y in graph.outputs else f"feeds {readers[0].op} node {readers[0].name}"
        raise CompileError(f"QuantizeLinear node {node.name}: its quantized output {where}; kiln holds "
                           f"QuantizeLinear's levels as f32 and compiles them only between QuantizeLinear and "
                           f"DequantizeLinear (QDQ models)")


def quant(graph: Graph, node: Node) -> Patch | None:
    if node.op not in ("QuantizeLinear", "DequantizeLinear"):
        return None
    scale, zp = quant_params(node)
    x, nodes = node.inputs[0], []
    s, z = graph.const("scale", scale), graph.const("zero_point", zp)
    if node.op == "QuantizeLinear":
        _check_qdq(graph, node)
        q = _step(graph, nodes, node, "Add", [_step(graph, nodes, node, "Round", [
            _step(graph, nodes, node, "Div", [x, s], exact=1)]), z])
        q = _step(graph, nodes, node, "Max", [q, graph.const("lo", np.float32(node.attrs["lo"]))])
        r = _step(graph, nodes, node, "Min", [q, graph.const("hi", np.float32(node.attrs["hi"]))])
    elif x.type.dtype == "f32":
        r = _step(graph, nodes, node, "Mul", [_step(graph, nodes, node, "Sub", [x, z], exact=1), s], exact=1)
    else:
        if x.type.dtype in ("i8", "u8"):
            x = _step(graph, nodes, node, "Cast", [x], to="i32")
        z = graph.const("zero_point", zp.astype(np.int64 if x.type.dtype == "i64" else np.int32))
        diff = _step(graph, nodes, node, "Cast", [_step(graph, nodes, node, "Sub", [x, z])], to="f32")
        r = _step(graph, nodes, node, "Mul", [diff, s])
    y = node.outputs[0]
    nodes.append(Node("Reshape", node.name, [r], [y], {"shape": y.type.shape}))
    return Patch(nodes)
