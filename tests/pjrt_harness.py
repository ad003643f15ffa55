"""Running models through the launcher's PJRT path on XLA's CPU plugin, against onnxruntime.

One launcher is linked per test session (its CPU model is a stand-in); each case gets a bundle
directory with a hard link to it and the case's StableHLO program under share/cpu-xla/, which is
where the launcher looks (paths resolve from the executable)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import onnx

from onnx_models import assert_close, run_onnxruntime, single_op

PLATFORM = "cpu-xla"


def plugin_path() -> Path:
    from kiln.toolchain.fetch import ensure

    return ensure("lammps-jax-pjrt-cpu", "amd64") / "lammps_jax_pjrt_cpu" / "pjrt_c_api_cpu_plugin.so"


def link_launcher(workdir: Path, sanitize: bool = False) -> Path:
    """A launcher with a one-op CPU model linked in."""
    from kiln.compiler import launcher
    from kiln.compiler import driver
    from kiln.toolchain.zig import zig_path

    model = single_op("Relu", [("x", np.zeros((1, 2), np.float32), False)])
    onnx.save(model, workdir / "stand_in.onnx")
    driver.compile(workdir / "stand_in.onnx", name="stand_in").write(workdir / "cpu")
    exe = workdir / "launcher"
    subprocess.run(launcher.link_argv(zig_path(), "linux-amd64", [str(workdir / "cpu" / "model.o")], str(exe),
                                      sanitize), check=True, capture_output=True)
    return exe


def bundle(launcher: Path, model: onnx.ModelProto, workdir: Path, name: str = "model") -> Path:
    """workdir/bin/<name> (a hard link to `launcher`) and workdir/share/cpu-xla/ for `model`."""
    workdir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, workdir / f"{name}.onnx")
    return bundle_file(launcher, workdir / f"{name}.onnx", None, workdir, name)


def bundle_file(launcher: Path, graph: Path, weights: Path | None, workdir: Path, name: str) -> Path:
    from kiln.compiler import driver

    driver.compile(graph, PLATFORM, weights, name=name).write(workdir / "share" / PLATFORM)
    (workdir / "bin").mkdir(parents=True, exist_ok=True)
    exe = workdir / "bin" / name
    if not exe.exists():
        os.link(launcher, exe)
    return exe


def run(exe: Path, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "KILN_PJRT_PLUGIN": str(plugin_path()), **(env or {})}
    return subprocess.run([str(exe), "--platform", PLATFORM, *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def run_model(exe: Path, model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    workdir = exe.parent.parent
    args = []
    for name, array in feeds.items():
        np.save(workdir / f"in_{name}.npy", array)
        args += ["--input", f"{name}={workdir / f'in_{name}.npy'}"]
    outputs = [o.name for o in model.graph.output]
    for i, name in enumerate(outputs):
        args += ["--output", f"{name}={workdir / f'out_{i}.npy'}"]
    done = run(exe, args)
    assert done.returncode == 0, done.stderr
    return [np.load(workdir / f"out_{i}.npy") for i in range(len(outputs))]


def check(launcher: Path, model: onnx.ModelProto, feeds: dict[str, np.ndarray], workdir: Path) -> None:
    """The launcher on XLA's CPU plugin matches onnxruntime within 1e-4 relative."""
    exe = bundle(launcher, model, workdir)
    got = run_model(exe, model, feeds)
    ref = run_onnxruntime(model, feeds)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert_close(g.reshape(r.shape), r)
