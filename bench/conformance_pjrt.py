"""The conformance suite's stablehlo runner: kiln's StableHLO program run by the C launcher on XLA's
CPU PJRT plugin, as tests/pjrt_harness.py runs it. Each worker process links one launcher (its CPU
model is a one-op stand-in) and gives every case a bundle with a hard link to it."""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

PLATFORM = "cpu-xla"
_launcher: list[Path] = []  # this worker's launcher, linked on first use


def run_stablehlo(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The case's outputs in the order of the model's graph outputs."""
    from kiln.compiler import driver

    compiled = driver.compile(path, PLATFORM, name="model")
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(scratch)
        compiled.write(bundle / "share" / PLATFORM)
        (bundle / "bin").mkdir()
        exe = bundle / "bin" / "model"
        os.link(_launcher_path(), exe)
        args = []
        for name, array in feeds.items():
            np.save(bundle / f"in_{name}.npy", array.astype(np.uint8) if array.dtype == np.bool_ else array)
            args += ["--input", f"{name}={bundle / f'in_{name}.npy'}"]
        outputs = [o["name"] for o in compiled.manifest["outputs"]]
        for i, name in enumerate(outputs):
            args += ["--output", f"{name}={bundle / f'out_{i}.npy'}"]
        done = subprocess.run([str(exe), "--platform", PLATFORM, *args], capture_output=True, text=True,
                              env={**os.environ, "KILN_PJRT_PLUGIN": str(_plugin())})
        if done.returncode != 0:
            raise RuntimeError(f"launcher exit {done.returncode}: {done.stderr.strip()[-300:]}")
        return [_as_declared(np.load(bundle / f"out_{i}.npy"), o)
                for i, o in enumerate(compiled.manifest["outputs"])]


def _as_declared(array: np.ndarray, output: dict) -> np.ndarray:
    """The launcher writes bool as uint8 and keeps the element count; the manifest has the shape."""
    if output["dtype"] == "bool":
        array = array.astype(np.bool_)
    return array.reshape(output["shape"]) if array.size == int(np.prod(output["shape"])) else array


def _plugin() -> Path:
    from kiln.toolchain.fetch import ensure

    return ensure("lammps-jax-pjrt-cpu", "amd64") / "lammps_jax_pjrt_cpu" / "pjrt_c_api_cpu_plugin.so"


def _launcher_path() -> Path:
    if not _launcher:
        workdir = Path(tempfile.mkdtemp(prefix="kiln-conformance-launcher-"))
        atexit.register(shutil.rmtree, workdir, True)
        _launcher.append(_link(workdir))
    return _launcher[0]


def _link(workdir: Path) -> Path:
    from kiln.compiler import driver, launcher
    from kiln.toolchain.zig import zig_path

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "stand_in", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), workdir / "stand_in.onnx")
    driver.compile(workdir / "stand_in.onnx", name="stand_in").write(workdir / "cpu")
    exe = workdir / "launcher"
    subprocess.run(launcher.link_argv(zig_path(), "linux-amd64", [str(workdir / "cpu" / "model.o")], str(exe)),
                   check=True, capture_output=True)
    return exe
