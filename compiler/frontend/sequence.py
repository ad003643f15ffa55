"""Importers for sequence ops: ops with outputs a model may omit (RNN, GRU, LSTM, TopK, CumSum,
CumProd) and control flow resolved at build time: If whose condition folds imports its chosen
branch inline; Loop with a constant trip count and Scan over static lengths are unrolled, each
iteration's body imported inline under its own names."""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import CompileError
from ..ir.graph import Graph, Node, Value
from ..passes.infer import infer

MAX_UNROLLED = 4096  # Loop iterations: each is a copy of the body in the compiled graph


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


def _typed(im, v: Value) -> Value:
    """`v` with its type, and its value when constants and static shapes fold it, known now
    rather than at inference."""
    if v.type is None or v.const is None:
        infer(Graph(im.source, [], [v], _cone(im.nodes, v)))
    return v


def _known(im, op: str, name: str, v: Value | None, what: str, default=None):
    """The build-time scalar `v` holds (`default` when absent); one line if only the run knows it."""
    if v is None:
        return default
    if _typed(im, v).const is None or v.const.size != 1:
        raise CompileError(f"{op} node {name} (opset {im.opset}): {what} must be known at build time; {v.name} is "
                           f"only known at run time, which is not supported ({im.source}); kiln unrolls and folds "
                           "control flow whose conditions and trip counts follow from constants and input shapes")
    return v.const.reshape(-1)[0]


def _inline(im, name: str, body: onnx.GraphProto, bindings: dict[str, Value] | None = None) -> list[Value]:
    """Import the subgraph's nodes under names prefixed with `name`, its inputs bound to
    `bindings`; returns its output values."""
    saved = dict(im.renames)
    for key, value in (bindings or {}).items():
        im.renames[key] = f"{name}/{key}"
        im.values[im.renames[key]] = value
    for init in body.initializer:
        im.renames[init.name] = f"{name}/{init.name}"
        im.values[im.renames[init.name]] = Value(im.renames[init.name], const=numpy_helper.to_array(init))
    read = {i for n in body.node for i in n.input} | {o.name for o in body.output}
    for index, proto in enumerate(body.node):
        copy = onnx.NodeProto()
        copy.CopyFrom(proto)
        copy.name = f"{name}/{proto.name or index}"
        for j, out in enumerate(proto.output):
            if out:
                copy.output[j] = im.renames[out] = f"{name}/{out}"
                if out in read:
                    im.used.add(copy.output[j])
        im.node(copy, index)
    results = [im.get(o.name, name) for o in body.output]
    im.renames = saved
    return results


def _bind(im, name: str, outs: list[str], values: list[Value]) -> None:
    for value, out in zip(values, outs):
        if out:
            im.emit("Identity", name, [value], [out])


def _if(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    cond = _known(im, "If", name, ins[0], "a condition")
    results = _inline(im, name, attrs["then_branch" if cond else "else_branch"])
    if len(results) != len(outs):
        raise CompileError(f"If node {name}: the branch has {len(results)} outputs, the node {len(outs)} "
                           f"({im.source})")
    _bind(im, name, outs, results)


def _stacked(im, name: str, parts: list[Value], axis: int, out: str) -> None:
    """The per-iteration values stacked along a new `axis`."""
    axes = Value(f"{out}.axes", const=np.array([axis], np.int64))
    rows = [im.emit("Unsqueeze", name, [p, axes], [f"{out}.{i}"])[0] for i, p in enumerate(parts)]
    im.emit("Concat", name, rows, [out], {"axis": axis})


def _loop(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """Unrolled: M iterations, fewer when the body's condition folds to false; every iteration's
    condition must fold."""
    body, carried = attrs["body"], list(ins[2:])
    trips = _known(im, "Loop", name, ins[0] if ins else None, "a trip count")
    if trips is None:
        raise CompileError(f"Loop node {name} (opset {im.opset}): a loop without a trip count M is not supported "
                           f"({im.source}); kiln unrolls loops whose trip count is a constant")
    keep_going, scans = bool(_known(im, "Loop", name, ins[1] if len(ins) > 1 else None, "a condition", True)), []
    names = [b.name for b in body.input]
    for i in range(int(trips) if keep_going else 0):
        if i == MAX_UNROLLED:
            raise CompileError(f"Loop node {name} (opset {im.opset}): more than {MAX_UNROLLED} iterations are not "
                               f"supported ({im.source}); kiln unrolls loops")
        step = [Value(f"{name}/iter{i}", const=np.array(i, np.int64)), Value(f"{name}/cond{i}", const=np.array(True))]
        results = _inline(im, f"{name}/{i}", body, dict(zip(names, step + carried)))
        carried, scan = results[1:1 + len(carried)], results[1 + len(carried):]
        scans.append(scan)
        if not _known(im, "Loop", name, results[0], "a loop condition"):
            break
    if len(outs) > len(carried) and not scans:
        raise CompileError(f"Loop node {name}: it runs no iteration, so its scan outputs are empty, which kiln "
                           f"does not support ({im.source})")
    _bind(im, name, outs, carried)
    for k, out in enumerate(outs[len(carried):]):
        if out:
            _stacked(im, name, [s[k] for s in scans], 0, out)


def _scan_slices(im, name: str, x: Value, axis: int, reverse: bool, tag: str) -> list[Value]:
    """x's slices along `axis` (the axis dropped), in the order the scan reads them."""
    length = _typed(im, x).type.shape[axis]
    order = range(length - 1, -1, -1) if reverse else range(length)
    return [im.emit("Gather", name, [x, Value(f"{tag}.at{t}", const=np.array(t, np.int64))], [f"{tag}.{t}"],
                    {"axis": axis})[0] for t in order]


def _scan(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """Unrolled over the scan inputs' (static) length; scan outputs stacked along their axes."""
    if im.opset < 9:  # onnx's version converter keeps opset 8's batched form, with sequence_lens
        raise CompileError(f"Scan node {name} (opset {im.opset}): opset 8's batched Scan is not supported "
                           f"({im.source}); export the model at opset 9 or later")
    body, m = attrs["body"], int(attrs["num_scan_inputs"])
    states, inputs = list(ins[:len(ins) - m]), ins[len(ins) - m:]
    in_axes = attrs.get("scan_input_axes", (0,) * m)
    in_dirs = attrs.get("scan_input_directions", (0,) * m)
    slices = [_scan_slices(im, name, x, ax % _typed(im, x).type.rank, bool(d), f"{name}/in{j}")
              for j, (x, ax, d) in enumerate(zip(inputs, in_axes, in_dirs))]
    names, scans = [b.name for b in body.input], []
    for t in range(len(slices[0]) if slices else 0):
        results = _inline(im, f"{name}/{t}", body, dict(zip(names, states + [s[t] for s in slices])))
        states = results[:len(states)]
        scans.append(results[len(states):])
    _bind(im, name, outs, states)
    k = len(outs) - len(states)
    out_axes, out_dirs = attrs.get("scan_output_axes", (0,) * k), attrs.get("scan_output_directions", (0,) * k)
    for j, out in enumerate(outs[len(states):]):
        parts = [s[j] for s in scans]
        if out:
            rank = _typed(im, parts[0]).type.rank + 1
            _stacked(im, name, parts[::-1] if out_dirs[j] else parts, out_axes[j] % rank, out)


SEQUENCE_MAPPERS: dict[str, Callable] = {
    **{op: _optional_outputs(op) for op in ("RNN", "GRU", "LSTM", "TopK", "CumSum", "CumProd")}, "If": _if,
    "Loop": _loop, "Scan": _scan,
}
