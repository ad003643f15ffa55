"""Test models built with onnx.helper (random weights, seeded) and the onnxruntime oracle."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Builder:
    """Accumulates nodes and initializers; names are generated deterministically."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}{self.count}"

    def weight(self, shape: tuple[int, ...], scale: float | None = None, hint: str = "w") -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        scale = scale if scale is not None else (2.0 / fan_in) ** 0.5
        data = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return self.const(data, hint)

    def const(self, data: np.ndarray, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(data), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs) -> str | list[str]:
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1,
             bias: bool = True) -> str:
        w = self.weight((cout, cin // group, k, k))
        ins = [x, w] + ([self.weight((cout,), 0.1)] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[k // 2] * 4, group=group)

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        params = [r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c), r.normal(0, 0.1, c), r.uniform(0.5, 1.5, c)]
        return self.op("BatchNormalization", [x] + [self.const(p.astype(np.float32), "bn") for p in params],
                       epsilon=1e-5)

    def linear(self, x: str, k: int, n: int) -> str:
        y = self.op("MatMul", [x, self.weight((k, n), (1.0 / k) ** 0.5)])
        return self.op("Add", [y, self.weight((n,), 0.1)])

    def model(self, inputs: list[tuple[str, int, list]], outputs: list[tuple[str, int, list | None]],
              opset: int = OPSET) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "test",
            [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
            [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m


F = TensorProto.FLOAT


def mlp(seed: int = 0) -> onnx.ModelProto:
    b = Builder(seed)
    h = b.op("Flatten", ["input"], axis=1)
    for k, n in ((784, 512), (512, 256)):
        w = b.weight((n, k), (1.0 / k) ** 0.5)
        h = b.op("Relu", [b.op("Gemm", [h, w, b.weight((n,), 0.1)], transB=1)])
    y = b.op("Gemm", [h, b.weight((256, 10), 1 / 16), b.weight((10,), 0.1)])
    b.nodes.append(helper.make_node("Identity", [y], ["logits"], name="out"))
    return b.model([("input", F, ["N", 1, 28, 28])], [("logits", F, None)])


def mnist_cnn(seed: int = 0) -> onnx.ModelProto:
    b = Builder(seed)
    h = b.op("Relu", [b.conv("input", 1, 8, 5)])
    h = b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("Relu", [b.conv(h, 8, 16, 5)])
    h = b.op("MaxPool", [h], kernel_shape=[3, 3], strides=[3, 3])
    h = b.op("Reshape", [h, b.const(np.array([-1, 256], np.int64))])
    y = b.op("Gemm", [h, b.weight((256, 10), 1 / 16), b.weight((10,), 0.1)])
    b.nodes.append(helper.make_node("Identity", [y], ["logits"], name="out"))
    return b.model([("input", F, [1, 1, 28, 28])], [("logits", F, None)])


def resnet(seed: int = 0, width: int = 32, size: int = 56, blocks: int = 3) -> onnx.ModelProto:
    b = Builder(seed)
    h = b.op("Relu", [b.bn(b.conv("input", 3, width, 7, stride=2, bias=False), width)])
    h = b.op("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = width
    for i in range(blocks):
        stride, cout = (2, c * 2) if i == blocks - 1 else (1, c)
        y = b.op("Relu", [b.bn(b.conv(h, c, cout, 3, stride=stride, bias=False), cout)])
        y = b.bn(b.conv(y, cout, cout, 3, bias=False), cout)
        skip = h if stride == 1 else b.bn(b.conv(h, c, cout, 1, stride=2, bias=False), cout)
        h, c = b.op("Relu", [b.op("Add", [y, skip])]), cout
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])])
    y = b.op("Gemm", [h, b.weight((10, c)), b.weight((10,), 0.1)], transB=1)
    b.nodes.append(helper.make_node("Softmax", [y], ["probs"], name="out"))
    return b.model([("input", F, [1, 3, size, size])], [("probs", F, None)])


def mobilenet_v2(seed: int = 0, size: int = 64) -> onnx.ModelProto:
    b = Builder(seed)
    relu6 = {"min": None}

    def clip6(x: str) -> str:
        if relu6["min"] is None:
            relu6["min"] = b.const(np.float32(0), "zero"), b.const(np.float32(6), "six")
        return b.op("Clip", [x, *relu6["min"]])

    def cbr(x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1, act=True) -> str:
        y = b.bn(b.conv(x, cin, cout, k, stride, group, bias=False), cout)
        return clip6(y) if act else y

    h = cbr("input", 3, 16, 3, 2)
    c = 16
    for expand, cout, stride in ((1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 2), (4, 32, 1)):
        hidden = c * expand
        y = cbr(h, c, hidden, 1) if expand != 1 else h
        y = cbr(y, hidden, hidden, 3, stride, group=hidden)
        y = cbr(y, hidden, cout, 1, act=False)
        h = b.op("Add", [h, y]) if stride == 1 and c == cout else y
        c = cout
    h = cbr(h, c, 128, 1)
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])])
    y = b.op("Gemm", [h, b.weight((10, 128)), b.weight((10,), 0.1)], transB=1)
    b.nodes.append(helper.make_node("Identity", [y], ["logits"], name="out"))
    return b.model([("input", F, [1, 3, size, size])], [("logits", F, None)])


def alexnet_like(seed: int = 0, size: int = 32) -> onnx.ModelProto:
    """Reflect padding, LRN, a channel-wise max, and a head that picks the class (ArgMax) and marks it
    (a bool output from Equal, through Not and Where): the ops older CNNs and their heads use."""
    b = Builder(seed)
    h = b.op("Pad", ["input", b.const(np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64))], mode="reflect")
    h = b.op("LRN", [b.op("Relu", [b.conv(h, 3, 16, 5)])], size=5, alpha=1e-2, beta=0.75, bias=2.0)
    h = b.op("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2])
    h = b.op("LRN", [b.op("Relu", [b.conv(h, 16, 32, 3)])], size=3)
    h = b.op("ReduceMax", [h, b.const(np.array([2, 3], np.int64))], keepdims=0)
    logits = b.op("Gemm", [h, b.weight((32, 10)), b.weight((10,), 0.1)])
    top = b.op("Equal", [logits, b.op("ReduceMax", [logits, b.const(np.array([1], np.int64))], keepdims=1)])
    b.nodes.append(helper.make_node("ArgMax", [logits], ["class"], name="class", axis=1, keepdims=0))
    b.nodes.append(helper.make_node("Where", [b.op("Not", [top]), b.const(np.float32(0)), logits], ["top"],
                                    name="top"))
    return b.model([("input", F, [1, 3, size, size])], [("class", TensorProto.INT64, None), ("top", F, None)],
                   opset=18)


def pointwise_depthwise(batch: int, k: int, stride: int) -> onnx.ModelProto:
    """x [batch, 8, 48, 44] -> 1x1 conv to 132 channels + BN + ReLU6 -> depthwise k x k conv + ReLU6.
    The 48*44*132 intermediate is over 1 MiB: the CPU backend runs the pair as one kernel."""
    b = Builder(7)
    six = [b.const(np.float32(0)), b.const(np.float32(6))]
    hidden = b.op("Clip", [b.bn(b.conv("x", 8, 132, 1), 132), *six])
    y = b.op("Clip", [b.conv(hidden, 132, 132, k, stride, group=132), *six])
    return b.model([("x", F, [batch, 8, 48, 44])], [(y, F, None)])


def transformer(seed: int = 0, seq: int = 32, hidden: int = 64, heads: int = 4, layers: int = 2
                ) -> onnx.ModelProto:
    b = Builder(seed)
    dh = hidden // heads
    h = "input"

    def layer_norm(x: str) -> str:
        return b.op("LayerNormalization", [x, b.const(b.rng.uniform(0.5, 1.5, hidden).astype(np.float32)),
                                           b.weight((hidden,), 0.1)], axis=-1, epsilon=1e-5)

    def heads_first(x: str) -> str:
        x = b.op("Reshape", [x, b.const(np.array([1, seq, heads, dh], np.int64))])
        return b.op("Transpose", [x], perm=[0, 2, 1, 3])

    for _ in range(layers):
        q, k, v = (heads_first(b.linear(h, hidden, hidden)) for _ in range(3))
        kt = b.op("Transpose", [k], perm=[0, 1, 3, 2])
        s = b.op("Mul", [b.op("MatMul", [q, kt]), b.const(np.float32(dh ** -0.5))])
        a = b.op("MatMul", [b.op("Softmax", [s], axis=-1), v])
        a = b.op("Reshape", [b.op("Transpose", [a], perm=[0, 2, 1, 3]),
                             b.const(np.array([1, seq, hidden], np.int64))])
        h = layer_norm(b.op("Add", [h, b.linear(a, hidden, hidden)]))
        f = b.linear(h, hidden, 4 * hidden)
        erf = b.op("Erf", [b.op("Div", [f, b.const(np.float32(2 ** 0.5))])])
        f = b.op("Mul", [b.op("Mul", [f, b.op("Add", [erf, b.const(np.float32(1))])]),
                         b.const(np.float32(0.5))])
        h = layer_norm(b.op("Add", [h, b.linear(f, 4 * hidden, hidden)]))
    b.nodes.append(helper.make_node("Identity", [h], ["hidden"], name="out"))
    return b.model([("input", F, [1, seq, hidden])], [("hidden", F, None)])


def single_op(op_type: str, inputs: list[tuple[str, np.ndarray, bool]], n_out: int = 1,
              opset: int = OPSET, **attrs) -> onnx.ModelProto:
    """One-node model: inputs are (name, example array, is_initializer)."""
    inits = [numpy_helper.from_array(a, n) for n, a, init in inputs if init]
    ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for n, a, init in inputs if not init]
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op_type, [n for n, _, _ in inputs], outs, name="the_node", **attrs)
    graph = helper.make_graph([node], op_type.lower(), ins,
                              [helper.make_empty_tensor_value_info(o) for o in outs], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int = 1
                    ) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def session(model: onnx.ModelProto, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def kiln_jit(model: onnx.ModelProto, workdir, variant: str | None = None, threads: int = 1, **compile_args):
    """Compile with kiln for the JIT harness: (JitModel, input names in call order)."""
    from pathlib import Path

    from kiln.compiler import driver
    from kiln.compiler.jit import JitModel, host_cpu_mask, runnable

    path = Path(workdir) / "model.onnx"
    onnx.save(model, path)
    compiled = driver.compile(path, **compile_args)
    wanted = [v for v in compiled.manifest["variants"] if v["name"] == variant]
    if wanted and not runnable(wanted[0], host_cpu_mask()):
        pytest.skip(f"this CPU cannot run {variant}")
    return JitModel(compiled, variant, threads), [i["name"] for i in compiled.manifest["inputs"]]


def kiln_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], workdir, variant: str | None = None,
             threads: int = 1, **compile_args) -> list[np.ndarray]:
    """Compile with kiln and run in-process through the JIT harness."""
    jit, names = kiln_jit(model, workdir, variant, threads, **compile_args)
    return jit.run(*[feeds[n] for n in names])


def with_specials(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feeds with NaN, +inf and -inf written into every float input at fixed places."""
    out = {}
    for name, array in feeds.items():
        array = array.copy()
        if array.dtype.kind == "f" and array.size:
            flat = array.reshape(-1)
            for i, value in zip((0, flat.size // 3, 2 * flat.size // 3), (np.nan, np.inf, -np.inf)):
                flat[i] = value
        out[name] = array
    return out


def assert_close(got: np.ndarray, ref: np.ndarray) -> None:
    """|got - ref| <= 1e-4 * max(1, |ref|) elementwise (f32 arithmetic in another order)."""
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert got.dtype == ref.dtype, (got.dtype, ref.dtype)
    if got.dtype.kind in "iub":
        np.testing.assert_array_equal(got, ref)
        return
    with np.errstate(invalid="ignore", over="ignore"):
        tol = 1e-4 * np.maximum(1.0, np.abs(ref))
        err = np.abs(got - ref)
        # NaN matches NaN and an infinity matches the same infinity
        bad = ~(err <= tol) & ~(np.isnan(got) & np.isnan(ref)) & ~(got == ref)
        assert not bad.any(), (f"{bad.sum()} of {bad.size} differ; first at {np.argmax(bad)}: "
                               f"got {got.ravel()[np.argmax(bad)]}, want {ref.ravel()[np.argmax(bad)]}")


def check(model: onnx.ModelProto, feeds: dict[str, np.ndarray], workdir, variant: str | None = None,
          specials: bool = False, **compile_args) -> None:
    """kiln against onnxruntime on `feeds` and, with `specials`, on them with NaN and infinities."""
    jit, names = kiln_jit(model, workdir, variant, **compile_args)
    for case in [feeds, with_specials(feeds)] if specials else [feeds]:
        ref = run_onnxruntime(model, case)
        got = jit.run(*[case[n] for n in names])
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert_close(g, r)


def recurrent(op: str, seq: int, batch: int, size: int, hidden: int, direction: str = "forward",
              lens: list[int] | None = None, initial: bool = False, peepholes: bool = False, bias: bool = True,
              outputs: tuple[bool, ...] = (True, True, True), seed: int = 0, **attrs
              ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One RNN/GRU/LSTM node with seeded weights (initializers) and its feeds; `outputs` says
    which of Y, Y_h (, Y_c) the node names (the others are omitted)."""
    rng = np.random.default_rng(seed)
    rand = lambda *shape: rng.uniform(-1, 1, shape).astype(np.float32)  # noqa: E731
    gates, dirs = {"RNN": 1, "GRU": 3, "LSTM": 4}[op], 1 + (direction == "bidirectional")
    layout = attrs.get("layout", 0)
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    inits = {"W": rand(dirs, gates * hidden, size), "R": rand(dirs, gates * hidden, hidden),
             "B": rand(dirs, 2 * gates * hidden) if bias else None,
             "sequence_lens": np.array(lens, np.int32) if lens is not None else None,
             "initial_h": rand(*state) if initial else None,
             "initial_c": rand(*state) if initial and op == "LSTM" else None,
             "P": rand(dirs, 3 * hidden) if peepholes else None}
    names = ["X"] + [k if v is not None else "" for k, v in inits.items()][:5 if op != "LSTM" else 7]
    outs = [name if keep else "" for name, keep in zip(("Y", "Y_h", "Y_c"), outputs[:3 if op == "LSTM" else 2])]
    node = helper.make_node(op, names, outs, name="the_node", hidden_size=hidden, direction=direction, **attrs)
    x = rand(batch, seq, size) if layout else rand(seq, batch, size)
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info("X", F, x.shape)],
                              [helper.make_empty_tensor_value_info(o) for o in outs if o],
                              [numpy_helper.from_array(v, k) for k, v in inits.items() if v is not None])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m, {"X": x}


def if_on_shape(width: int, runtime_condition: bool = False) -> onnx.ModelProto:
    """y = If(x.shape[1] == 4 (or, with `runtime_condition`, an input flag)): then x * 2 + c inside
    a nested If on a constant, else relu(x) - c; c is an outer-scope initializer, each branch has
    its own initializers and names that repeat in the other branch."""
    def branch(nodes: list, inits: dict, name: str) -> onnx.GraphProto:
        return helper.make_graph(nodes, name, [], [helper.make_empty_tensor_value_info("t")],
                                 [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    inner = branch([helper.make_node("Mul", ["x", "two"], ["m"]), helper.make_node("Add", ["m", "c"], ["t"])],
                   {"two": np.float32(2)}, "inner")
    never = branch([helper.make_node("Neg", ["x"], ["t"])], {}, "never")
    then = branch([helper.make_node("If", ["yes"], ["t"], then_branch=inner, else_branch=never)],
                  {"yes": np.array(True)}, "then")
    otherwise = branch([helper.make_node("Relu", ["x"], ["m"]), helper.make_node("Sub", ["m", "c"], ["t"])], {}, "else")
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "one"], ["width"], axis=0),
             helper.make_node("Equal", ["width", "four"], ["cond"]),
             helper.make_node("If", ["flag" if runtime_condition else "cond"], ["y"], name="the_if",
                              then_branch=then, else_branch=otherwise)]
    inputs = [helper.make_tensor_value_info("x", F, [2, width])]
    if runtime_condition:
        inputs.append(helper.make_tensor_value_info("flag", TensorProto.BOOL, []))
    inits = [numpy_helper.from_array(v, k) for k, v in (("one", np.array(1, np.int64)), ("four", np.array(4, np.int64)),
                                                      ("c", np.array([0.5], np.float32)))]
    graph = helper.make_graph(nodes, "if", inputs, [helper.make_empty_tensor_value_info("y")], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def loop_model(trips: int = 3, stop_at: int | None = None) -> onnx.ModelProto:
    """Loop with a constant trip count: v <- v * 2 + iteration, each v also a scan output; the body's
    condition is `iteration != stop_at` (constant true without `stop_at`)."""
    cond = ([helper.make_node("Constant", [], ["stop"], value=numpy_helper.from_array(np.array(stop_at, np.int64))),
             helper.make_node("Equal", ["i", "stop"], ["at_stop"]), helper.make_node("Not", ["at_stop"], ["c_out"])]
            if stop_at is not None else [helper.make_node("Identity", ["c_in"], ["c_out"])])
    body = helper.make_graph(
        cond + [helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
                helper.make_node("Mul", ["v", "two"], ["v2"]), helper.make_node("Add", ["v2", "fi"], ["v_out"]),
                helper.make_node("Identity", ["v_out"], ["scan"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v", F, [2, 3])],
        [helper.make_tensor_value_info(n, t, None)
         for n, t in (("c_out", TensorProto.BOOL), ("v_out", F), ("scan", F))],
        [numpy_helper.from_array(np.float32(2), "two")])
    node = helper.make_node("Loop", ["m", "", "x"], ["v_final", "vs"], name="the_loop", body=body)
    graph = helper.make_graph([node], "loop", [helper.make_tensor_value_info("x", F, [2, 3])],
                              [helper.make_empty_tensor_value_info(o) for o in ("v_final", "vs")],
                              [numpy_helper.from_array(np.array(trips, np.int64), "m")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def scan_model(reverse_in: int = 0, out_axis: int = 0, reverse_out: int = 0) -> onnx.ModelProto:
    """Scan over x [2, 5, 3] along axis 1: state s [2, 3] <- s + x_t; outputs s and each s * x_t."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "xt"], ["s_out"]), helper.make_node("Mul", ["s_out", "xt"], ["y"])],
        "body", [helper.make_tensor_value_info("s", F, [2, 3]), helper.make_tensor_value_info("xt", F, [2, 3])],
        [helper.make_tensor_value_info("s_out", F, [2, 3]), helper.make_tensor_value_info("y", F, [2, 3])])
    node = helper.make_node("Scan", ["s0", "x"], ["s_final", "ys"], name="the_scan", body=body, num_scan_inputs=1,
                            scan_input_axes=[1], scan_input_directions=[reverse_in], scan_output_axes=[out_axis],
                            scan_output_directions=[reverse_out])
    graph = helper.make_graph([node], "scan", [helper.make_tensor_value_info("s0", F, [2, 3]),
                                               helper.make_tensor_value_info("x", F, [2, 5, 3])],
                              [helper.make_empty_tensor_value_info(o) for o in ("s_final", "ys")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m
