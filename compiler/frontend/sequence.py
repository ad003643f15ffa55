"""Importers for sequence ops: ops with outputs a model may omit (RNN, GRU, LSTM, TopK) and If,
whose condition must be known at build time: the chosen branch is imported inline."""
from __future__ import annotations

from typing import Callable

import onnx
from onnx import numpy_helper

from ..errors import CompileError
from ..ir.graph import Graph, Node, Value
from ..passes.infer import infer


def _optional_outputs(op: str) -> Callable:
    """The IR op with every omitted ("") output given a name of its own."""
    def mapper(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
        im.emit(op, name, ins, [o or f"{name}.{op}.omitted{i}" for i, o in enumerate(outs)], attrs)
    return mapper


def _cone(nodes: list[Node], v: Value) -> list[Node]:
    """The nodes `v` is computed from, in graph order."""
    wanted, todo = set(), [v]
    while todo:
        producer = todo.pop().producer
        if producer is not None and id(producer) not in wanted:
            wanted.add(id(producer))
            todo.extend(i for i in producer.inputs if i is not None)
    return [n for n in nodes if id(n) in wanted]


def _condition(im, name: str, cond: Value) -> bool:
    """If's condition, folded from constants and static shapes now rather than at inference."""
    if cond.const is None:
        infer(Graph(im.source, [], [cond], _cone(im.nodes, cond)))
    if cond.const is None or cond.const.size != 1:
        raise CompileError(f"If node {name} (opset {im.opset}): a condition known only at run time ({cond.name}) "
                           f"is not supported ({im.source}); kiln folds an If whose condition follows from "
                           "constants and input shapes")
    return bool(cond.const.reshape(-1)[0])


def _inline(im, name: str, branch: onnx.GraphProto) -> list[Value]:
    """Import the branch's nodes under names of their own; returns its output values."""
    saved = dict(im.renames)
    for init in branch.initializer:
        im.renames[init.name] = f"{name}/{init.name}"
        im.values[im.renames[init.name]] = Value(im.renames[init.name], const=numpy_helper.to_array(init))
    read = {i for n in branch.node for i in n.input} | {o.name for o in branch.output}
    for index, proto in enumerate(branch.node):
        copy = onnx.NodeProto()
        copy.CopyFrom(proto)
        copy.name = f"{name}/{proto.name or index}"
        for j, out in enumerate(proto.output):
            if out:
                copy.output[j] = im.renames[out] = f"{name}/{out}"
                if out in read:
                    im.used.add(copy.output[j])
        im.node(copy, index)
    results = [im.get(o.name, name) for o in branch.output]
    im.renames = saved
    return results


def _if(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    branch = attrs["then_branch" if _condition(im, name, ins[0]) else "else_branch"]
    results = _inline(im, name, branch)
    if len(results) != len(outs):
        raise CompileError(f"If node {name}: the branch has {len(results)} outputs, the node {len(outs)} "
                           f"({im.source})")
    for value, out in zip(results, outs):
        if out:
            im.emit("Identity", name, [value], [out])


SEQUENCE_MAPPERS: dict[str, Callable] = {
    **{op: _optional_outputs(op) for op in ("RNN", "GRU", "LSTM", "TopK", "CumSum", "CumProd")}, "If": _if,
}
