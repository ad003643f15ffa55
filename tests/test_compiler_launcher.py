"""Compiled objects linked into the real C launcher (zig) and run: natively at every x86_64
feature level, and as linux-arm64 under qemu-user, against onnxruntime."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from tool_skips import needs_tool, require_tool

import onnx_models as M
from onnx_models import assert_close, run_onnxruntime
from kiln.compiler import launcher
from kiln.compiler import driver

pytestmark = pytest.mark.e2e

QEMU = shutil.which("qemu-aarch64")
ARM64_LIBC = Path("/lib/ld-linux-aarch64.so.1")
HOSTS = {
    "linux-amd64": (["x86-64-v4", "x86-64-v3", "x86-64-v2"], []),
    "linux-arm64": ([None], [QEMU, "-L", "/"]),
}


def _build(model: onnx.ModelProto, workdir: Path, host: str) -> Path:
    onnx.save(model, workdir / "model.onnx")
    out = workdir / host
    driver.compile(workdir / "model.onnx", host=host).write(out)
    argv = launcher.link_argv("zig", host, [str(out / "model.o")], str(out / "model"))
    r = subprocess.run([sys.executable, "-m", "ziglang", *argv[1:]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("host", sorted(HOSTS))
@pytest.mark.parametrize("name", ["mnist_cnn", "mobilenet_v2", "transformer"])
def test_launcher_runs_compiled_model(tmp_path, host, name):
    levels, prefix = HOSTS[host]
    if prefix:
        require_tool("qemu-aarch64 and Debian's arm64 glibc", QEMU is not None and ARM64_LIBC.exists())
    model = getattr(M, name)()
    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = run_onnxruntime(model, {model.graph.input[0].name: x})[0]
    out = _build(model, tmp_path, host)
    for level in levels:
        env = dict(os.environ, KILN_CPU_LEVEL=level) if level else dict(os.environ)
        y = tmp_path / f"y-{level}.npy"
        r = subprocess.run([*prefix, str(out / "model"), "--weights", str(out / "weights.safetensors"),
                            "--input", str(tmp_path / "x.npy"), "--output", str(y), "--threads", "2"],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        assert_close(np.load(y), ref)


def test_bool_input_and_output_are_npy_bools(tmp_path):
    """A comparison's bool output is written as numpy's bool ('|b1'); a bool input reads alike; the
    constant Pad's bool mask is a weight the launcher checks."""
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    m = np.array([[True], [False], [True]])
    b = M.Builder()
    padded = b.op("Pad", ["x", b.const(np.array([0, 1, 0, 2], np.int64)), b.const(np.float32(-1))])
    b.nodes.append(onnx.helper.make_node("And", ["m", b.op("Less", [padded, b.const(np.float32(0))])], ["y"]))
    model = b.model([("m", onnx.TensorProto.BOOL, [3, 1]), ("x", M.F, [3, 4])], [("y", onnx.TensorProto.BOOL, None)])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "m.npy", m)
    out = _build(model, tmp_path, "linux-amd64")
    r = subprocess.run([str(out / "model"), "--weights", str(out / "weights.safetensors"), "--input",
                        f"m={tmp_path / 'm.npy'}", "--input", f"x={tmp_path / 'x.npy'}", "--output",
                        str(tmp_path / "y.npy")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "y.npy")
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, run_onnxruntime(model, {"m": m, "x": x})[0])
    for fed, error in ((m.astype(np.uint8), ""), (m.astype(np.float32), "but input 'm' needs '|b1' (bool)\n")):
        np.save(tmp_path / "m.npy", fed)
        r = subprocess.run([str(out / "model"), "--weights", str(out / "weights.safetensors"), "--input",
                            f"m={tmp_path / 'm.npy'}", "--input", f"x={tmp_path / 'x.npy'}"],
                           capture_output=True, text=True)
        assert (r.returncode != 0, r.stderr.endswith(error)) == (bool(error), True), r.stderr


def test_uint8_input_and_int8_output_are_npy_bytes(tmp_path):
    """A uint8 image ('|u1') cast to float and scaled, and an int8 output ('|i1') cast from float and
    joined to an int8 weight, through the launcher; a float fed for the uint8 input is refused."""
    img = np.random.default_rng(6).integers(0, 256, (2, 5)).astype(np.uint8)
    x = np.random.default_rng(7).uniform(-127, 127, (2, 3)).astype(np.float32)
    b = M.Builder()
    scaled = b.op("Mul", [b.op("Cast", ["img"], to=onnx.TensorProto.FLOAT), b.const(np.float32(1 / 255))])
    b.nodes.append(onnx.helper.make_node("Identity", [scaled], ["y"]))
    q = b.op("Cast", ["x"], to=onnx.TensorProto.INT8)
    b.nodes.append(onnx.helper.make_node("Concat", [q, b.const(np.int8([[-128, 127]] * 2))], ["z"], axis=1))
    model = b.model([("img", onnx.TensorProto.UINT8, [2, 5]), ("x", M.F, [2, 3])],
                    [("y", M.F, None), ("z", onnx.TensorProto.INT8, None)])
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "x.npy", x)
    out = _build(model, tmp_path, "linux-amd64")
    argv = [str(out / "model"), "--weights", str(out / "weights.safetensors"), "--input",
            f"img={tmp_path / 'img.npy'}", "--input", f"x={tmp_path / 'x.npy'}"]
    r = subprocess.run([*argv, "--output", f"y={tmp_path / 'y.npy'}", "--output", f"z={tmp_path / 'z.npy'}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    want = run_onnxruntime(model, {"img": img, "x": x})
    assert_close(np.load(tmp_path / "y.npy"), want[0])
    got = np.load(tmp_path / "z.npy")
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want[1])
    np.save(tmp_path / "img.npy", img.astype(np.float32))
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.endswith("but input 'img' needs '|u1' (u8)\n"), r.stderr


@needs_tool("qemu-x86_64", shutil.which("qemu-x86_64") is not None)
@pytest.mark.parametrize("cpu,variant", [("Haswell", "x86-64-v3"), ("Nehalem", "x86-64-v2")])
def test_older_cpu_gets_its_variant_and_portable_sha256(tmp_path, cpu, variant):
    """On a CPU model without AVX-512 or the SHA extensions (qemu-x86_64 -cpu ...), CPUID picks
    the variant and the weights' sha256 check runs in portable C — and both give the right answer."""
    model = M.mnist_cnn()
    x = np.random.default_rng(4).standard_normal((1, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = _build(model, tmp_path, "linux-amd64")
    y = tmp_path / "y.npy"
    r = subprocess.run([shutil.which("qemu-x86_64"), "-cpu", cpu, str(out / "model"), "--weights",
                        str(out / "weights.safetensors"), "--input", str(tmp_path / "x.npy"), "--output", str(y)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"cpu variant {variant} " in r.stderr
    assert_close(np.load(y), run_onnxruntime(model, {"input": x})[0])
