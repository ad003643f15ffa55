"""Zoo-sized models built with onnx.helper (random weights, fixed seeds): ResNet-50 and DenseNet-121 as
the ONNX model zoo has them (conv/BN/ReLU, bottlenecks, dense blocks joined by Concat), and a BERT-base
sized encoder (12 layers, hidden 768, 12 heads, FFN 3072, seq 128: 110M parameters) whose weights go
to a safetensors file next to the graph, as a 440 MB checkpoint would ship.

    python bench/zoo_models.py OUTDIR    # writes resnet50.onnx, densenet121.onnx, encoder.{onnx,safetensors}
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
F, I64 = TensorProto.FLOAT, TensorProto.INT64


class Builder:
    """Nodes and initializers with deterministic names; weights He-scaled from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}{self.count}"

    def const(self, data: np.ndarray, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits[name] = np.asarray(data)
        return name

    def weight(self, shape: tuple[int, ...], scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        scale = scale if scale is not None else (2.0 / fan_in) ** 0.5
        return self.const(self.rng.standard_normal(shape, np.float32) * np.float32(scale), "w")

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1) -> str:
        return self.op("Conv", [x, self.weight((cout, cin, k, k))], kernel_shape=[k, k],
                       strides=[stride, stride], pads=[k // 2] * 4)

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        params = [r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c), r.normal(0, 0.1, c), r.uniform(0.5, 1.5, c)]
        return self.op("BatchNormalization", [x] + [self.const(p.astype(np.float32), "bn") for p in params],
                       epsilon=1e-5)

    def conv_bn(self, x: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True) -> str:
        y = self.bn(self.conv(x, cin, cout, k, stride), cout)
        return self.op("Relu", [y]) if relu else y

    def bn_relu_conv(self, x: str, cin: int, cout: int, k: int) -> str:
        return self.conv(self.op("Relu", [self.bn(x, cin)]), cin, cout, k)

    def linear(self, x: str, k: int, n: int) -> str:
        y = self.op("MatMul", [x, self.weight((k, n), (1.0 / k) ** 0.5)])
        return self.op("Add", [y, self.weight((n,), 0.1)])

    def model(self, inputs: list[tuple[str, int, list]], output: str, inline: bool = True) -> onnx.ModelProto:
        """The ONNX model; without `inline`, initializers are declarations only (weights elsewhere)."""
        inits = [numpy_helper.from_array(a, n) if inline else _declaration(n, a) for n, a in self.inits.items()]
        self.nodes.append(helper.make_node("Identity", [output], ["output"], name="out"))
        graph = helper.make_graph(self.nodes, "zoo", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                                  [helper.make_tensor_value_info("output", F, None)], inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        return m


def _declaration(name: str, data: np.ndarray) -> onnx.TensorProto:
    t = onnx.TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(data.dtype))
    t.dims.extend(data.shape)
    return t


def _stem(b: Builder) -> str:
    x = b.conv_bn("data", 3, 64, 7, 2)
    return b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])


def _classifier(b: Builder, x: str, channels: int) -> str:
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    return b.op("Gemm", [x, b.weight((1000, channels), channels ** -0.5), b.weight((1000,), 0.1)], transB=1)


def resnet50(seed: int = 0) -> onnx.ModelProto:
    """ResNet-50 v1: bottlenecks (1x1, 3x3 with the stride, 1x1 x4) in stages of 3, 4, 6, 3."""
    b = Builder(seed)
    x, cin = _stem(b), 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        for i in range(blocks):
            stride = 2 if i == 0 and stage > 0 else 1
            y = b.conv_bn(x, cin, width, 1)
            y = b.conv_bn(y, width, width, 3, stride)
            y = b.conv_bn(y, width, 4 * width, 1, relu=False)
            skip = b.conv_bn(x, cin, 4 * width, 1, stride, relu=False) if i == 0 else x
            x, cin = b.op("Relu", [b.op("Add", [y, skip])]), 4 * width
    return b.model([("data", F, [1, 3, 224, 224])], _classifier(b, x, cin))


def densenet121(seed: int = 0, growth: int = 32) -> onnx.ModelProto:
    """DenseNet-121: dense blocks of 6, 12, 24, 16 layers (BN-ReLU-1x1 to 4*growth, BN-ReLU-3x3 to
    growth, concatenated onto the block's features), transitions halving channels and size."""
    b = Builder(seed)
    x, c = _stem(b), 64
    for block, layers in enumerate((6, 12, 24, 16)):
        for _ in range(layers):
            y = b.bn_relu_conv(b.bn_relu_conv(x, c, 4 * growth, 1), 4 * growth, growth, 3)
            x, c = b.op("Concat", [x, y], axis=1), c + growth
        if block < 3:
            x = b.bn_relu_conv(x, c, c // 2, 1)
            x, c = b.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2]), c // 2
    return b.model([("data", F, [1, 3, 224, 224])], _classifier(b, b.op("Relu", [b.bn(x, c)]), c))


ENCODER = {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "seq": 128, "vocab": 30522}


def encoder(seed: int = 0, layers: int = 12, hidden: int = 768, heads: int = 12, ffn: int = 3072,
            seq: int = 128, vocab: int = 30522) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """BERT-base sized encoder over token ids: (model with declared initializers, its weights)."""
    b = Builder(seed)
    dh = hidden // heads

    def layer_norm(x: str) -> str:
        gamma = b.const(b.rng.uniform(0.5, 1.5, hidden).astype(np.float32), "ln")
        return b.op("LayerNormalization", [x, gamma, b.weight((hidden,), 0.1)], axis=-1, epsilon=1e-12)

    def split_heads(x: str) -> str:
        x = b.op("Reshape", [x, b.const(np.array([1, seq, heads, dh], np.int64))])
        return b.op("Transpose", [x], perm=[0, 2, 1, 3])

    words = b.op("Gather", [b.weight((vocab, hidden), 0.02), "input_ids"])
    h = layer_norm(b.op("Add", [words, b.weight((1, seq, hidden), 0.02)]))
    for _ in range(layers):
        q, k, v = (split_heads(b.linear(h, hidden, hidden)) for _ in range(3))
        s = b.op("Mul", [b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                         b.const(np.float32(dh ** -0.5))])
        a = b.op("MatMul", [b.op("Softmax", [s], axis=-1), v])
        a = b.op("Reshape", [b.op("Transpose", [a], perm=[0, 2, 1, 3]), b.const(np.array([1, seq, hidden], np.int64))])
        h = layer_norm(b.op("Add", [h, b.linear(a, hidden, hidden)]))
        f = b.linear(h, hidden, ffn)
        erf = b.op("Erf", [b.op("Div", [f, b.const(np.float32(2 ** 0.5))])])
        f = b.op("Mul", [b.op("Mul", [f, b.op("Add", [erf, b.const(np.float32(1))])]), b.const(np.float32(0.5))])
        h = layer_norm(b.op("Add", [h, b.linear(f, ffn, hidden)]))
    weights = dict(b.inits)
    return b.model([("input_ids", I64, [1, seq])], h, inline=False), weights


def encoder_params(weights: dict[str, np.ndarray]) -> int:
    return sum(a.size for a in weights.values() if a.dtype == np.float32)


def write_encoder(outdir: Path, **sizes) -> tuple[Path, Path]:
    """encoder.onnx and encoder.safetensors in outdir."""
    from safetensors.numpy import save_file

    model, weights = encoder(**sizes)
    outdir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, outdir / "encoder.onnx")
    save_file(weights, outdir / "encoder.safetensors")
    return outdir / "encoder.onnx", outdir / "encoder.safetensors"


def main(argv: list[str]) -> None:
    outdir = Path(argv[0]) if argv else Path("zoo-models")
    outdir.mkdir(parents=True, exist_ok=True)
    onnx.save(resnet50(), outdir / "resnet50.onnx")
    onnx.save(densenet121(), outdir / "densenet121.onnx")
    write_encoder(outdir)
    print(f"wrote resnet50.onnx, densenet121.onnx, encoder.onnx + encoder.safetensors to {outdir}")


if __name__ == "__main__":
    main(sys.argv[1:])
