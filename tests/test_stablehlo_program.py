"""What the StableHLO compile writes: the module's signature, the manifest and the weights file."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from onnx_models import mlp, single_op


def compile_to(tmp_path, model: onnx.ModelProto, platform: str = "tpu") -> dict:
    onnx.save(model, tmp_path / "m.onnx")
    done = subprocess.run([sys.executable, "-m", "kiln.compiler", "compile", "--platform", platform,
                           "--name", "m", "-o", str(tmp_path / "out"), str(tmp_path / "m.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "out" / "manifest.json").read_text())


def test_weights_are_arguments_not_constants(tmp_path):
    manifest = compile_to(tmp_path, mlp())
    text = (tmp_path / "out" / "model.mlir").read_text()
    weights = manifest["weights"]["tensors"]
    assert len(weights) == 6
    signature = text.splitlines()[1]
    assert signature.count(": tensor<") == len(weights) + 1
    assert "tensor<784x512xf32>" not in "".join(l for l in text.splitlines() if "stablehlo.constant" in l)
    args = manifest["arguments"]
    assert [a["kind"] for a in args] == ["weight"] * 6 + ["input"]
    assert {a["name"] for a in args[:6]} == {w["name"] for w in weights}


def test_weights_file_is_the_cpu_format(tmp_path):
    manifest = compile_to(tmp_path, mlp())
    data = (tmp_path / "out" / "weights.safetensors").read_bytes()
    start = manifest["weights"]["data_offset"]
    assert start % 64 == 0 and start == 8 + int.from_bytes(data[:8], "little")
    for w in manifest["weights"]["tensors"]:
        assert w["offset"] % 64 == 0
        array = np.frombuffer(data[start + w["offset"]:start + w["offset"] + w["nbytes"]], np.float32)
        assert array.size == int(np.prod(w["shape"]))


def test_static_shapes_and_batch(tmp_path):
    manifest = compile_to(tmp_path, mlp())
    assert manifest["inputs"] == [{"name": "input", "dtype": "f32", "shape": [1, 1, 28, 28]}]
    assert manifest["outputs"] == [{"name": "logits", "dtype": "f32", "shape": [1, 10]}]
    assert "?" not in (tmp_path / "out" / "model.mlir").read_text()


def test_compile_is_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    compile_to(tmp_path / "a", mlp())
    compile_to(tmp_path / "b", mlp())
    for name in ("model.mlir", "weights.safetensors", "manifest.json"):
        assert (tmp_path / "a" / "out" / name).read_bytes() == (tmp_path / "b" / "out" / name).read_bytes()


def test_unsupported_platform_is_an_error(tmp_path):
    onnx.save(mlp(), tmp_path / "m.onnx")
    done = subprocess.run([sys.executable, "-m", "kiln.compiler", "compile", "--platform", "gpu", "-o",
                           str(tmp_path), str(tmp_path / "m.onnx")], capture_output=True, text=True)
    assert done.returncode == 1 and "unknown platform gp" in done.stderr


@pytest.mark.parametrize("platform", ["tpu", "cpu-xla"])
def test_manifest_names_the_platform(tmp_path, platform):
    x = np.zeros((2, 3), np.float32)
    manifest = compile_to(tmp_path, single_op("Relu", [("x", x, False)]), platform)
    assert manifest["platform"] == platform and manifest["program"]["file"] == "model.mlir"


@pytest.mark.parametrize("precision", ["highest", "default"])
def test_dots_and_convolutions_carry_the_precision(tmp_path, precision):
    """Without precision_config XLA:TPU multiplies f32 in bf16 passes; the model's precision is on every
    operand of every dot_general and convolution."""
    from onnx_models import mnist_cnn

    onnx.save(mnist_cnn(), tmp_path / "m.onnx")
    done = subprocess.run([sys.executable, "-m", "kiln.compiler", "compile", "--platform", "tpu", "--precision",
                           precision, "-o", str(tmp_path / "out"), str(tmp_path / "m.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = [l for l in (tmp_path / "out" / "model.mlir").read_text().splitlines()
             if '"stablehlo.dot_general"' in l or '"stablehlo.convolution"' in l]
    assert {'"stablehlo.dot_general"', '"stablehlo.convolution"'} <= {l.split("(")[0].split("= ")[1] for l in lines}
    operand = f"#stablehlo<precision {precision.upper()}>"
    assert all(f"precision_config = [{operand}, {operand}]" in l for l in lines), lines


def test_unknown_precision_is_a_usage_error(tmp_path):
    onnx.save(mlp(), tmp_path / "m.onnx")
    done = subprocess.run([sys.executable, "-m", "kiln.compiler", "compile", "--platform", "tpu", "--precision",
                           "bf16", "-o", str(tmp_path / "out"), str(tmp_path / "m.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice: 'bf16'" in done.stderr
