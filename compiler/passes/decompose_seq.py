"""Sequence ops from ops every backend has.

RNN/GRU/LSTM are unrolled over their static sequence length, their directions stacked on a leading
axis: the input projection of all steps is one MatMul, then each step is a MatMul with R and
elementwise gates; a constant sequence_lens reorders each batch entry's steps by a constant Gather
(reverse runs within its own length) and freezes its state past its length, where Y is 0 (as
onnxruntime). CumSum/CumProd are a log-step
(Hillis-Steele) scan of shifted copies: exact for integers, float sums in tree order. TopK ranks
every element by pairwise comparison (ties to the lower index), then finds ranks 0..k-1 and gathers
their values: a fixed number of nodes for any k, at n^2 comparisons per row."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir.graph import DTYPES, Graph, Node, Patch, Value
from ..ir.ops_seq import GATES, RecurrentShape, recurrent_shape, scan_axis, top_k
from .chain import Chain

# activation -> (default alpha, default beta); None: takes no such parameter
ACTIVATION_PARAMS = {"affine": (1.0, 0.0), "leakyrelu": (0.01, None), "thresholdedrelu": (1.0, None),
                     "scaledtanh": (1.0, 1.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, None)}
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh")}
SIMPLE_ACTIVATIONS = {"sigmoid", "tanh", "relu", "softsign", "softplus"}

Activation = tuple[str, float | None, float | None]


def _const(c: Chain, value, dtype=np.float32) -> Value:
    return c.graph.const("k", np.asarray(value, dtype))


def _part(c: Chain, x: Value, axis: int, start: int, size: int) -> Value:
    return c.add("Slice", [x, _const(c, [start], np.int64), _const(c, [start + size], np.int64),
                           _const(c, [axis], np.int64)])


def _activations(node: Node, directions: int) -> list[list[Activation]]:
    """Per direction, its activations with their alpha and beta (the attribute lists are consumed
    in order by the activations that take each parameter)."""
    names = node.attr("activations", None) or DEFAULT_ACTIVATIONS[node.op] * directions
    per = len(DEFAULT_ACTIVATIONS[node.op])
    if len(names) != per * directions:
        raise CompileError(f"{node.op} node {node.name}: {len(names)} activations given, expected "
                           f"{per * directions}")
    alphas, betas = list(node.attr("activation_alpha", ())), list(node.attr("activation_beta", ()))
    out: list[Activation] = []
    for name in names:
        key = name.lower()
        if key not in SIMPLE_ACTIVATIONS and key not in ACTIVATION_PARAMS:
            raise CompileError(f"{node.op} node {node.name}: unsupported activation {name}; supported: Sigmoid, "
                               "Tanh, Relu, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, "
                               "Softsign, Softplus")
        alpha, beta = ACTIVATION_PARAMS.get(key, (None, None))
        alpha = alphas.pop(0) if alpha is not None and alphas else alpha
        beta = betas.pop(0) if beta is not None and betas else beta
        out.append((key, alpha, beta))
    return [out[d * per:(d + 1) * per] for d in range(directions)]


def _activate(c: Chain, act: Activation, x: Value) -> Value:
    name, alpha, beta = act
    if name in ("sigmoid", "tanh", "relu"):
        return c.add(name.capitalize(), [x])
    if name == "hardsigmoid":
        return c.add("HardSigmoid", [x], alpha=alpha, beta=beta)
    zero, one = _const(c, 0), _const(c, 1)
    if name == "affine":
        return c.add("Add", [c.add("Mul", [x, _const(c, alpha)]), _const(c, beta)])
    if name == "scaledtanh":
        return c.add("Mul", [c.add("Tanh", [c.add("Mul", [x, _const(c, beta)])]), _const(c, alpha)])
    if name == "thresholdedrelu":
        return c.add("Where", [c.add("Greater", [x, _const(c, alpha)]), x, zero])
    if name == "softsign":
        return c.add("Div", [x, c.add("Add", [one, c.add("Abs", [x])])])
    positive = c.add("Max", [x, zero])
    if name == "softplus":
        return c.add("Add", [positive, c.add("Log", [c.add("Add", [one, c.add("Exp", [c.add("Neg", [
            c.add("Abs", [x])])])])])])
    negative = c.add("Min", [x, zero])
    if name == "elu":
        negative = c.add("Sub", [c.add("Exp", [negative]), one])
    return c.add("Add", [positive, c.add("Mul", [negative, _const(c, alpha)])])  # leakyrelu, elu


class _Cell:
    """A recurrent node's weights, biases and activations with its directions stacked on a leading
    axis (both directions of a bidirectional node run as one batched step), and one step."""

    def __init__(self, c: Chain, node: Node, s: RecurrentShape, acts: list[list[Activation]]) -> None:
        self.c, self.node, self.s, self.acts = c, node, s, acts
        ins = node.inputs + [None] * (10 - len(node.inputs))
        b, p = ins[3], ins[7]
        self.w, self.r = (c.add("Transpose", [v], perm=(0, 2, 1)) for v in ins[1:3])  # [dirs, in, gates*hidden]
        self.clip = node.attr("clip", None)
        self.scales = (ins[8], ins[9]) if node.attr("dynamic_quantize", 0) else None
        self.wb = self.rb = self.p = None
        hidden_all = GATES[node.op] * s.hidden
        if b is not None:
            b = c.add("Reshape", [b], shape=(s.directions, 1, 2 * hidden_all))
            self.wb, self.rb = _part(c, b, 2, 0, hidden_all), _part(c, b, 2, hidden_all, hidden_all)
        if p is not None:
            self.p = c.add("Reshape", [p], shape=(s.directions, 1, 3 * s.hidden))

    def _linear_before_reset(self) -> bool:
        return self.node.op == "GRU" and bool(self.node.attr("linear_before_reset", 0))

    def projection(self, x2d: Value) -> Value:
        """X @ W^T for every step and direction at once ([dirs, seq * batch, gates * hidden]), with
        every bias that adds outside the gates' products."""
        proj = self.product(x2d, self.w, 0, (0, 1))
        if self.wb is None:
            return proj
        bias = self.rb
        if self._linear_before_reset():  # Rb of the hidden gate goes inside r * (...)
            zeros = _const(self.c, np.zeros((self.s.directions, 1, self.s.hidden)))
            bias = self.c.add("Concat", [_part(self.c, self.rb, 2, 0, 2 * self.s.hidden), zeros], axis=2)
        return self.c.add("Add", [proj, self.c.add("Add", [self.wb, bias])])

    def product(self, x: Value, w: Value, which: int, axes: tuple[int, ...]) -> Value:
        """x @ w; for a dynamic_quantize node (W and R as integer levels, inputs 8 and 9 their scales)
        x quantized to uint8 levels first, one scale over `axes` (each direction's own for the hidden
        state), as onnxruntime's DynamicQuantizeLSTM does: integer products exact in f32, scaled once."""
        if self.scales is None:
            return self.c.add("MatMul", [x, w])
        levels, scale = _dynamic_levels(self.c, x, axes)
        return self.c.add("Mul", [self.c.add("MatMul", [levels, w]), self.c.add("Mul", [scale, self.scales[which]])])

    def gate(self, v: Value, i: int) -> Value:
        return _part(self.c, v, 2, i * self.s.hidden, self.s.hidden)

    def activate(self, k: int, x: Value) -> Value:
        """The k-th activation of each direction (one op when the directions share it)."""
        per = [acts[k] for acts in self.acts]
        if all(a == per[0] for a in per):
            return _activate(self.c, per[0], x)
        return self.c.add("Concat", [_activate(self.c, a, _part(self.c, x, 0, d, 1)) for d, a in enumerate(per)],
                          axis=0)

    def clipped(self, x: Value) -> Value:
        if self.clip is None:
            return x
        return self.c.add("Min", [self.c.add("Max", [x, _const(self.c, -self.clip)]), _const(self.c, self.clip)])

    def step(self, xt: Value, h: Value, cell: Value | None) -> tuple[Value, Value | None]:
        """The next hidden state (and LSTM cell state) from this step's projected input."""
        return {"RNN": self._rnn, "GRU": self._gru, "LSTM": self._lstm}[self.node.op](xt, h, cell)

    def _rnn(self, xt: Value, h: Value, cell: None) -> tuple[Value, None]:
        return self.activate(0, self.clipped(self.c.add("Add", [xt, self.c.add("MatMul", [h, self.r])]))), None

    def _gru(self, xt: Value, h: Value, cell: None) -> tuple[Value, None]:
        c, hidden = self.c, self.s.hidden
        if self._linear_before_reset():
            hr = c.add("MatMul", [h, self.r])
            recurrent = self.gate(hr, 2)
            if self.rb is not None:
                recurrent = c.add("Add", [recurrent, _part(c, self.rb, 2, 2 * hidden, hidden)])
        else:
            hr = c.add("MatMul", [h, _part(c, self.r, 2, 0, 2 * hidden)])
        z = self.activate(0, self.clipped(c.add("Add", [self.gate(xt, 0), self.gate(hr, 0)])))
        reset = self.activate(0, self.clipped(c.add("Add", [self.gate(xt, 1), self.gate(hr, 1)])))
        if self._linear_before_reset():
            recurrent = c.add("Mul", [reset, recurrent])
        else:
            recurrent = c.add("MatMul", [c.add("Mul", [reset, h]), _part(c, self.r, 2, 2 * hidden, hidden)])
        candidate = self.activate(1, self.clipped(c.add("Add", [self.gate(xt, 2), recurrent])))
        keep = c.add("Mul", [z, h])
        return c.add("Add", [c.add("Mul", [c.add("Sub", [_const(c, 1), z]), candidate]), keep]), None

    def _peephole(self, x: Value, i: int, cell: Value) -> Value:
        if self.p is None:
            return x
        return self.c.add("Add", [x, self.c.add("Mul", [self.gate(self.p, i), cell])])

    def _lstm(self, xt: Value, h: Value, cell: Value) -> tuple[Value, Value]:
        c = self.c
        pre = c.add("Add", [xt, self.product(h, self.r, 1, (1, 2))])
        i_gate = self.activate(0, self.clipped(self._peephole(self.gate(pre, 0), 0, cell)))
        if self.node.attr("input_forget", 0):
            f_gate = c.add("Sub", [_const(c, 1), i_gate])
        else:
            f_gate = self.activate(0, self.clipped(self._peephole(self.gate(pre, 2), 2, cell)))
        candidate = self.activate(1, self.clipped(self.gate(pre, 3)))
        cell = c.add("Add", [c.add("Mul", [f_gate, cell]), c.add("Mul", [i_gate, candidate])])
        o_gate = self.activate(0, self.clipped(self._peephole(self.gate(pre, 1), 1, cell)))
        return c.add("Mul", [o_gate, self.activate(2, cell)]), cell


def _dynamic_levels(c: Chain, x: Value, axes: tuple[int, ...]) -> tuple[Value, Value]:
    """x's uint8 levels minus their zero point (f32) and their scale, one per slice over `axes`, as
    DynamicQuantizeLinear computes them (frontend/quant.py)."""
    zero, full = _const(c, 0), _const(c, 255)
    lo = c.add("Min", [c.add("ReduceMin", [x], axes_norm=axes, keepdims=1), zero])
    spread = c.add("Sub", [c.add("Max", [c.add("ReduceMax", [x], axes_norm=axes, keepdims=1), zero]), lo])
    scale = c.add("Where", [c.add("Equal", [spread, zero]), _const(c, 1), c.add("Div", [spread, full], exact=1)])

    def clamp(v: Value) -> Value:
        return c.add("Min", [c.add("Max", [v, zero]), full])

    zp = c.add("Round", [clamp(c.add("Neg", [c.add("Div", [lo, scale], exact=1)]))])
    q = clamp(c.add("Add", [c.add("Round", [c.add("Div", [x, scale], exact=1)]), zp]))
    return c.add("Sub", [q, zp]), scale


def _step_order(node: Node, s: RecurrentShape, lens: np.ndarray) -> np.ndarray | None:
    """Rows of the [dirs * seq * batch] projection in the order the directions read them (None: as
    they are); a reverse direction reads each batch entry backwards from its own last step. The
    order is its own inverse, so it also puts Y back."""
    reverse = [node.attr("direction", "forward") == "reverse" or d == 1 for d in range(s.directions)]
    if not any(reverse):
        return None
    t, b = np.meshgrid(np.arange(s.seq), np.arange(s.batch), indexing="ij")
    backwards = (np.where(t < lens[b], lens[b] - 1 - t, t) * s.batch + b).reshape(-1)
    rows = s.seq * s.batch
    return np.concatenate([(backwards if r else np.arange(rows)) + d * rows for d, r in enumerate(reverse)])


def _reordered(c: Chain, x: Value, order: np.ndarray | None, shape: tuple[int, ...]) -> Value:
    if order is None:
        return x
    flat = c.add("Reshape", [x], shape=(len(order), shape[-1]))
    return c.add("Reshape", [c.add("Gather", [flat, _const(c, order, np.int64)], axis=0)], shape=shape)


def _initial(c: Chain, v: Value | None, s: RecurrentShape) -> Value:
    """An initial state as [dirs, batch, hidden]."""
    if v is None:
        return _const(c, np.zeros((s.directions, s.batch, s.hidden)))
    return c.add("Transpose", [v], perm=(1, 0, 2)) if s.layout else v


def _unrolled(c: Chain, node: Node, s: RecurrentShape, x2d: Value, lens: np.ndarray
              ) -> tuple[Value, Value, Value | None]:
    """Y as [dirs, seq * batch, hidden] (zero past each entry's length), the last hidden state and
    cell state as [dirs, batch, hidden]."""
    cell_def = _Cell(c, node, s, _activations(node, s.directions))
    ins = node.inputs + [None] * (8 - len(node.inputs))
    h, cell = _initial(c, ins[5], s), _initial(c, ins[6], s) if node.op == "LSTM" else None
    order, rows = _step_order(node, s, lens), (s.directions, s.seq * s.batch)
    proj = _reordered(c, cell_def.projection(x2d), order, rows + (GATES[node.op] * s.hidden,))
    ys, zeros = [], _const(c, np.zeros((s.directions, s.batch, s.hidden)))
    for t in range(s.seq):
        active = t < lens
        if not active.any():
            ys.append(zeros)
            continue
        new_h, new_cell = cell_def.step(_part(c, proj, 1, t * s.batch, s.batch), h, cell)
        if active.all():
            h, cell = new_h, new_cell
            ys.append(h)
            continue
        mask = _const(c, active.reshape(1, -1, 1), np.bool_)
        h = c.add("Where", [mask, new_h, h])
        cell = c.add("Where", [mask, new_cell, cell]) if cell is not None else None
        ys.append(c.add("Where", [mask, new_h, zeros]))
    y = c.add("Concat", ys, axis=1) if len(ys) > 1 else ys[0]
    return _reordered(c, y, order, rows + (s.hidden,)), h, cell


def recurrent(graph: Graph, node: Node) -> Patch | None:
    if node.op not in ("RNN", "GRU", "LSTM"):
        return None
    s, c = recurrent_shape(node), Chain(graph, node)
    lens_in = node.inputs[4] if len(node.inputs) > 4 else None
    lens = np.full(s.batch, s.seq) if lens_in is None else np.asarray(lens_in.const).astype(np.int64).reshape(-1)
    if lens.shape != (s.batch,) or (lens < 0).any() or (lens > s.seq).any():
        raise CompileError(f"{node.op} node {node.name}: sequence_lens {lens.tolist()} must hold one length in "
                           f"0..{s.seq} per batch entry")
    x = node.inputs[0]
    if s.layout:
        x = c.add("Transpose", [x], perm=(1, 0, 2))
    y, h, cell = _unrolled(c, node, s, c.add("Reshape", [x], shape=(s.seq * s.batch, s.input)), lens)
    y = c.add("Reshape", [y], shape=(s.directions, s.seq, s.batch, s.hidden))
    outs = [(y, (2, 1, 0, 3) if s.layout else (1, 0, 2, 3)), (h, (1, 0, 2)), (cell, (1, 0, 2))]
    for i, (out, (v, perm)) in enumerate(zip(node.outputs, outs)):
        if i == 0 or s.layout:  # Y always moves; the states only when batch-first
            v = c.add("Transpose", [v], perm=perm)
        c.add("Reshape", [v], out, shape=out.type.shape)
    return Patch(c.nodes)


def _shifted(c: Chain, x: Value, axis: int, by: int, fill) -> Value:
    """x (of the scanned node's input type) moved `by` places along `axis`, the vacated front
    filled with `fill`."""
    t = c.node.inputs[0].type
    shape = t.shape[:axis] + (by,) + t.shape[axis + 1:]
    head = _const(c, np.full(shape, fill), DTYPES[t.dtype])
    return c.add("Concat", [head, _part(c, x, axis, 0, t.shape[axis] - by)], axis=axis)


def cumulative(graph: Graph, node: Node) -> Patch | None:
    if node.op not in ("CumSum", "CumProd"):
        return None
    x, axis, c = node.inputs[0], scan_axis(node), Chain(graph, node)
    n = x.type.shape[axis]
    combine, fill = ("Add", 0) if node.op == "CumSum" else ("Mul", 1)
    flip = _const(c, np.arange(n)[::-1].copy(), np.int64)
    if node.attr("reverse", 0):
        x = c.add("Gather", [x, flip], axis=axis)
    if node.attr("exclusive", 0):
        x = _shifted(c, x, axis, 1, fill)
    step = 1
    while step < n:
        x = c.add(combine, [x, _shifted(c, x, axis, step, fill)])
        step *= 2
    if node.attr("reverse", 0):
        x = c.add("Gather", [x, flip], axis=axis)
    c.add("Reshape", [x], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


def topk(graph: Graph, node: Node) -> Patch | None:
    """rank_i = #{j : x_j before x_i} with "before" meaning larger (smaller), NaN above every number
    (as numpy's sort and torch.topk; onnxruntime's order around NaN depends on its sort algorithm),
    ties to the lower index; output r is the element of rank r."""
    if node.op != "TopK":
        return None
    x, (axis, k), c = node.inputs[0], top_k(node), Chain(graph, node)
    t = x.type
    rank, n, dtype = t.rank, t.shape[axis], t.dtype
    to_last = tuple(i for i in range(rank) if i != axis) + (axis,)
    if axis != rank - 1:
        x = c.add("Transpose", [x], perm=to_last)
    mine = c.add("Unsqueeze", [x, _const(c, [-1], np.int64)])    # [..., n, 1]: x_i
    other = c.add("Unsqueeze", [x, _const(c, [-2], np.int64)])   # [..., 1, n]: x_j
    better = c.add("Greater" if node.attr("largest", 1) else "Less", [other, mine])
    tie = c.add("Equal", [other, mine])
    if dtype == "f32":
        nan_i, nan_j = (c.add("Not", [c.add("Equal", [v, v])]) for v in (mine, other))
        nan_first = (nan_j, c.add("Not", [nan_i])) if node.attr("largest", 1) else (c.add("Not", [nan_j]), nan_i)
        better = c.add("Or", [c.add("And", list(nan_first)), better])
        tie = c.add("Or", [tie, c.add("And", [nan_i, nan_j])])
    lower_index = _const(c, np.tril(np.ones((n, n), np.bool_), -1), np.bool_)  # [i, j]: j < i
    before = c.add("Or", [better, c.add("And", [tie, lower_index])])
    # counts and positions in f32 (exact below 2^24): the backends sum f32 only
    ranks = c.add("ReduceSum", [c.add("Cast", [before], to="f32")], axes=(-1,), keepdims=1)   # [..., n, 1]
    pick = c.add("Equal", [ranks, _const(c, np.arange(k))])                                  # [..., n, k]
    iota = _const(c, np.arange(n).reshape(n, 1))
    indices = c.add("Cast", [c.add("ReduceSum", [c.add("Where", [pick, iota, _const(c, 0)])], axes=(-2,),
                                   keepdims=0)], to="i64")                                   # [..., k]
    lead = t.shape[:axis] + t.shape[axis + 1:]
    rows = _const(c, (np.arange(int(np.prod(lead, dtype=np.int64))) * n).reshape(lead + (1,)), np.int64)
    flat = c.add("Reshape", [x], shape=(t.numel,))
    values = c.add("Gather", [flat, c.add("Add", [indices, rows])], axis=0)
    back = tuple(int(np.argsort(to_last)[i]) for i in range(rank))
    for v, out in ((values, node.outputs[0]), (indices, node.outputs[1])):
        if axis != rank - 1:
            v = c.add("Transpose", [v], perm=back)
        c.add("Reshape", [v], out, shape=out.type.shape)
    return Patch(c.nodes)


RULES = [recurrent, cumulative, topk]
