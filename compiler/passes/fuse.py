"""Fusion: elementwise ops and views become `Fused` programs, pure views are absorbed by their
readers, and chains of elementwise programs are fused into their producer (Conv, MatMul or
another program) whenever the intermediate values are used nowhere else."""
from __future__ import annotations

from ..ir.fused import Instr, View, result_ref
from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_elementwise import ELEMENTWISE
from ..ir.ops_shape import perm_of
from .dce import dce

PRODUCERS = {"Conv": 2, "MatMul": 2, "Fused": 0}  # op -> number of own (non-epilogue) inputs
IDENTITY = (Instr("Identity", (("in", 0),)),)


def _fused(node: Node, inputs: list[Value], views: list[View], program: tuple[Instr, ...]) -> Node:
    y = node.outputs[0]
    return Node("Fused", node.name, inputs, [y], {
        "program": program, "views": tuple(views), "shape": y.type.shape, "dtype": y.type.dtype})


def _to_fused(graph: Graph, node: Node) -> Patch | None:
    y = node.outputs[0]
    x = node.inputs[0]
    if node.op in ELEMENTWISE:
        attrs = tuple(sorted((k, v) for k, v in node.attrs.items()))
        prog = (Instr(node.op, tuple(("in", k) for k in range(len(node.inputs))), attrs),)
        views = [View.broadcast(v.type.shape, y.type.shape) for v in node.inputs]
        return Patch([_fused(node, node.inputs, views, prog)])
    if node.op == "Transpose":
        view = View((0,) * x.type.rank, tuple((p, 1) for p in perm_of(node)))
    elif node.op == "Slice":
        view = View(node.attrs["first"], tuple((d, s) for d, s in enumerate(node.attrs["step"])))
    elif node.op == "Expand":
        view = View.broadcast(x.type.shape, y.type.shape)
    else:
        return None
    return Patch([_fused(node, [x], [view], IDENTITY)])


def _is_view(node: Node | None) -> bool:
    return node is not None and node.op == "Fused" and node.attrs["program"] == IDENTITY


def _absorb_views(graph: Graph, node: Node) -> Patch | None:
    """A program reading a pure view reads the view's source directly."""
    if node.op != "Fused" or not any(_is_view(v.producer) for v in node.inputs):
        return None
    inputs, views = [], []
    for v, view in zip(node.inputs, node.attrs["views"]):
        if _is_view(v.producer):
            view = view.compose(v.producer.attrs["views"][0])
            v = v.producer.inputs[0]
        inputs.append(v)
        views.append(view)
    return Patch([Node("Fused", node.name, inputs, node.outputs, dict(node.attrs, views=tuple(views)))])


def _copy_to_alias(graph: Graph, node: Node) -> Patch | None:
    if not _is_view(node):
        return None
    x, y = node.inputs[0], node.outputs[0]
    if x.type.dtype != y.type.dtype or not node.attrs["views"][0].is_identity(x.type.shape, y.type.shape):
        return None
    return Patch([Node("Reshape", node.name, [x], [y], {"shape": y.type.shape})])


class Group:
    """A producer plus the elementwise programs being fused into it."""

    def __init__(self, producer: Node) -> None:
        self.nodes = [producer]
        self.n_args = PRODUCERS[producer.op]
        self.inputs = list(producer.inputs)
        self.views = list(producer.attr("views", ()))
        self.program = list(producer.attr("program", ()))
        self.refs = {producer.outputs[0]: result_ref(tuple(self.program))}
        self.gemm = producer.op != "Fused"

    def accepts(self, c: Node) -> bool:
        y = self.nodes[0].outputs[0]
        if c.op != "Fused" or c.attrs["shape"] != y.type.shape:
            return False
        for v, view in zip(c.inputs, c.attrs["views"]):
            if v in self.refs and not view.is_identity(v.type.shape, c.attrs["shape"]):
                return False
            if self.gemm and v not in self.refs and not _channel_vectorizable(v, view):
                return False
        return not self.gemm or c.attrs["dtype"] == "f32"

    def add(self, c: Node) -> None:
        base = len(self.program)
        for instr in c.attrs["program"]:
            args = tuple(self._ref(c, a, base) for a in instr.args)
            self.program.append(Instr(instr.op, args, instr.attrs))
        self.nodes.append(c)
        self.refs[c.outputs[0]] = ("t", len(self.program) - 1)

    def _ref(self, c: Node, ref: tuple, base: int) -> tuple:
        if ref[0] == "t":
            return ("t", base + ref[1])
        v, view = c.inputs[ref[1]], c.attrs["views"][ref[1]]
        if v in self.refs:
            return self.refs[v]
        for k in range(self.n_args, len(self.inputs)):
            if self.inputs[k] is v and self.views[k - self.n_args] == view:
                return ("in", k)
        self.inputs.append(v)
        self.views.append(view)
        return ("in", len(self.inputs) - 1)

    def node(self) -> Node:
        p = self.nodes[0]
        attrs = dict(p.attrs, program=tuple(self.program), views=tuple(self.views))
        return Node(p.op, p.name, self.inputs, self.nodes[-1].outputs, attrs)


def _channel_vectorizable(v: Value, view: View) -> bool:
    """GEMM epilogues load operands as vectors along the output's last (channel) dimension."""
    k, step = view.dims[-1]
    return v.type.dtype == "f32" and (k == -1 or (k == v.type.rank - 1 and step == 1))


def _closed(graph: Graph, nodes: list[Node], uses: dict[Value, list[Node]]) -> bool:
    members = set(nodes)
    for n in nodes[:-1]:
        y = n.outputs[0]
        if y in graph.outputs or any(u not in members for u in uses.get(y, [])):
            return False
    return True


def _grow(graph: Graph, producer: Node, uses: dict[Value, list[Node]],
          order: dict[Node, int]) -> Group | None:
    group, best = Group(producer), 1
    while True:
        frontier = [u for n in group.nodes for u in uses.get(n.outputs[0], []) if u not in group.nodes]
        if not frontier:
            break
        nxt = min(frontier, key=order.__getitem__)
        if not group.accepts(nxt):
            break
        group.add(nxt)
        if _closed(graph, group.nodes, uses):
            best = len(group.nodes)
    if best == 1:
        return None
    fused = Group(producer)
    for c in group.nodes[1:best]:
        fused.add(c)
    return fused


def _fuse_groups(graph: Graph) -> bool:
    """Fuses the first producer (in graph order) that can grow a group; False if none can. The
    graph changes only on success, so its uses and order are computed once per call."""
    uses = graph.consumers()
    order = {n: i for i, n in enumerate(graph.nodes)}
    for producer in list(graph.nodes):
        if producer.op not in PRODUCERS:
            continue
        group = _grow(graph, producer, uses, order)
        if group is None:
            continue
        members = set(group.nodes)
        at = graph.nodes.index(group.nodes[-1])
        graph.nodes[at] = group.node()
        graph.nodes = [n for n in graph.nodes if n not in members]
        return True
    return False


def fuse(graph: Graph) -> Graph:
    graph.rewrite(_to_fused)
    while graph.rewrite(_absorb_views):
        dce(graph)
    while _fuse_groups(graph):
        pass
    graph.rewrite(_copy_to_alias)
    return dce(graph)
