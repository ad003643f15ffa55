"""The device check for a GPU or TPU host (README: "Checking a GPU host"):

    tests/device/run.sh [--platforms cuda,rocm,tpu] [--models mnist,mlp,mnist_cnn,resnet,mobilenet_v2,transformer]
                        [--runs 50] [--keep DIR]

Builds the examples' mnist model and the test models (tests/onnx_models.py) for the requested
accelerators and linux-amd64 with kiln, asks each launcher which of them is usable on this machine,
runs every model on each usable one and on the CPU with the same seeded inputs, and prints a table:
platform, the device and driver as the launcher reports them, the largest output error relative to
the CPU's largest output, and the median latency against the CPU's. An error above 1e-4 fails the
check (exit 1); the TPU row says when its dots run in bf16 (precision = "default"). With no usable
accelerator it prints SKIP and the launcher's reason per platform, and exits 0. `--platforms cpu-xla`
(XLA's CPU plugin) takes the same path on any machine; tests/test_device_check.py runs it so.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import onnx_models  # noqa: E402

EXAMPLES = HERE.parent.parent / "examples"
TOLERANCE = 1e-4
TENSOR = re.compile(r"^(input|output):\s+(\S+): (\w+) \[([\d, ]*)\]$", re.M)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    platforms, models = args.platforms.split(","), args.models.split(",")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kiln-device-"))
    try:
        probe = build(work, ["mnist"], platforms)["mnist"]
        usable, why = usable_platforms(probe, platforms)
        if not usable:
            print("SKIP: no usable accelerator here (" + "; ".join(f"{p}: {why[p]}" for p in platforms) + ")")
            return 0
        bundles = build(work, models, usable)
        rows = [row for model in models for row in check(bundles[model], model, usable, args.runs)]
        print(table(rows))
        return 1 if any(r["error"] > TOLERANCE for r in rows) else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tests/device/run.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platforms", default="cuda,rocm,tpu")
    parser.add_argument("--models", default="mnist,mlp,mnist_cnn,resnet,mobilenet_v2,transformer")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per latency cell")
    parser.add_argument("--keep", help="build and unpack here, and keep it")
    return parser


def build(work: Path, models: list[str], platforms: list[str]) -> dict[str, Path]:
    """kiln builds each model's archive for the platforms; returns each unpacked bundle's launcher."""
    workspace = work / "ws"
    (workspace / "device").mkdir(parents=True, exist_ok=True)
    (workspace / "MODULE.kiln").write_text("")
    rules = []
    for model in models:
        graph = workspace / "device" / f"{model}.onnx"
        if model == "mnist":
            shutil.copy(EXAMPLES / "mnist" / "mnist.onnx", graph)
            shutil.copy(EXAMPLES / "mnist" / "mnist.safetensors", graph.with_suffix(".safetensors"))
        else:
            onnx.save(getattr(onnx_models, model)(), graph)
        weights = f'weights = "{model}.safetensors", ' if model == "mnist" else ""
        rules.append(f'model(name = "{model}", graph = "{model}.onnx", {weights})\n'
                     f'archive(name = "{model}_archive", model = ":{model}")\n')
    (workspace / "device" / "BUILD").write_text("".join(rules))
    targets = [f"//device:{m}_archive" for m in models]
    subprocess.run([sys.executable, "-m", "kiln.build_rules", "build", f"--platform={','.join(platforms)},linux-amd64",
                    *targets], cwd=workspace, check=True)
    config = "-".join(["linux-amd64", "cpu", *sorted(platforms)])
    launchers = {}
    for model in models:
        unpacked = work / "unpacked" / model
        with tarfile.open(workspace / "kiln-out" / config / "device" / f"{model}.tar.gz") as tar:
            tar.extractall(unpacked, filter="tar")
        launchers[model] = unpacked / model / "bin" / model
    return launchers


def run(launcher: Path, platform: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILN_PLATFORM": platform}
    return subprocess.run([str(launcher), *args], env=env, capture_output=True, text=True, timeout=600)


def usable_platforms(launcher: Path, platforms: list[str]) -> tuple[list[str], dict[str, str]]:
    usable, why = [], {}
    for platform in platforms:
        done = run(launcher, platform, "--info")
        if done.returncode == 0:
            usable.append(platform)
        else:
            why[platform] = done.stderr.strip().splitlines()[-1].split("unusable here: ")[-1]
    return usable, why


def check(launcher: Path, model: str, platforms: list[str], runs: int) -> list[dict]:
    info = run(launcher, "cpu", "--info").stdout
    tensors = TENSOR.findall(info)
    rng = np.random.default_rng(0)
    folder = launcher.parent.parent / "device-check"
    folder.mkdir(exist_ok=True)
    args = []
    for kind, name, dtype, shape in tensors:
        if kind == "input":
            dims = tuple(int(d) for d in shape.split(",") if d.strip())
            path = folder / f"{name}.npy"
            np.save(path, rng.standard_normal(dims).astype(np.float32) if dtype == "f32" else np.zeros(dims, dtype))
            args += ["--input", f"{name}={path}"]
    outputs = [name for kind, name, *_ in tensors if kind == "output"]
    reference = outputs_of(launcher, "cpu", args, outputs, folder)
    cpu_ms = median_ms(launcher, "cpu", runs)
    rows = []
    for platform in platforms:
        done, got = outputs_of(launcher, platform, args, outputs, folder, keep_run=True)
        error = max(float(np.max(np.abs(got[n] - reference[n]))) / max(float(np.max(np.abs(reference[n]))), 1e-30)
                    for n in outputs)
        device = done.stderr.splitlines()[0].removeprefix("kiln: platform ") if done.stderr else "?"
        rows.append({"model": model, "platform": platform, "device": device, "error": error,
                     "ms": median_ms(launcher, platform, runs), "cpu_ms": cpu_ms})
    return rows


def outputs_of(launcher: Path, platform: str, args: list[str], outputs: list[str], folder: Path,
               keep_run: bool = False):
    files = {n: folder / f"{platform}-{n}.npy" for n in outputs}
    done = run(launcher, platform, *args, *[a for n, f in files.items() for a in ("--output", f"{n}={f}")])
    if done.returncode != 0:
        raise SystemExit(f"device check: {launcher.name} on {platform} failed: {done.stderr.strip()}")
    got = {n: np.load(f).astype(np.float64) for n, f in files.items()}
    return (done, got) if keep_run else got


def median_ms(launcher: Path, platform: str, runs: int) -> float:
    done = run(launcher, platform, "--bench", str(runs))
    found = re.search(r"median ([\d.]+) ms", done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"device check: {launcher.name} --bench on {platform} failed: {done.stderr.strip()}")
    return float(found.group(1))


def table(rows: list[dict]) -> str:
    lines = ["| model | platform | device, driver, code | max error / max output | ms | CPU ms | vs CPU |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        verdict = "" if r["error"] <= TOLERANCE else " FAIL"
        lines.append(f"| {r['model']} | {r['platform']} | {r['device']} | {r['error']:.2e}{verdict} | {r['ms']:.3f} "
                     f"| {r['cpu_ms']:.3f} | {r['cpu_ms'] / r['ms']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
