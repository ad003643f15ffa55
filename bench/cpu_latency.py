"""Batch-1 CPU latency of kiln's compiled launcher against onnxruntime, side by side.

    python bench/cpu_latency.py [--runs 200] [--rounds 3] [--models mnist,mlp,resnet,mobilenet,transformer]

Each model is built with `kiln build` in a scratch workspace; the launcher's own `--bench N`
timer and onnxruntime's session (same thread count) are run in alternating rounds; the table
shows the median of the rounds' medians and the ratio kiln / onnxruntime (below 1.0: kiln is faster).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def example(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    from safetensors.numpy import load_file
    folder = REPO / "examples" / "mnist"
    return onnx.load(str(folder / f"{name}.onnx")), load_file(str(folder / f"{name}.safetensors"))


def generated(factory: str):
    import onnx_models
    model = getattr(onnx_models, factory)()
    return model, {}


MODELS = {
    "mnist": lambda: example("mnist"),
    "mlp": lambda: example("mlp"),
    "resnet": lambda: generated("resnet"),
    "mobilenet": lambda: generated("mobilenet_v2"),
    "transformer": lambda: generated("transformer"),
}


def build_launcher(workspace: Path, name: str, model: onnx.ModelProto, weights: dict) -> tuple[Path, Path]:
    from safetensors.numpy import save_file
    package = workspace / name
    package.mkdir(parents=True)
    onnx.save(model, str(package / "model.onnx"))
    attrs = ""
    if weights:
        save_file(weights, str(package / "model.safetensors"))
        attrs = ', weights = "model.safetensors"'
    (package / "BUILD.kiln").write_text(f'model(name = "{name}", graph = "model.onnx"{attrs})\n')
    subprocess.run([sys.executable, "-m", "kiln.build_rules", "build", f"//{name}"], cwd=workspace, check=True,
                   capture_output=True)
    out = workspace / "kiln-out" / "linux-amd64-cpu" / name
    return out / name, out / f"{name}.cpu" / "weights.safetensors"


def ort_session(model: onnx.ModelProto, weights: dict, threads: int):
    import onnxruntime as ort
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.graph.initializer.extend(onnx.numpy_helper.from_array(v, k) for k, v in weights.items())
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def ort_median_ms(session, feeds: dict, runs: int) -> float:
    for _ in range(max(10, runs // 10)):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def kiln_median_ms(launcher: Path, weights: Path, inputs: list[Path], names: list[str], threads: int, runs: int) -> float:
    args = [a for n, p in zip(names, inputs) for a in ("--input", f"{n}={p}")]
    done = subprocess.run([str(launcher), "--weights", str(weights), "--threads", str(threads),
                           "--bench", str(runs), *args], capture_output=True, text=True, check=True)
    return float(re.search(r"median ([0-9.]+) ms", done.stdout + done.stderr).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(scratch)
        (workspace / "MODULE.kiln").write_text("")
        for name in args.models.split(","):
            model, weights = MODELS[name]()
            launcher, packed = build_launcher(workspace, name, model, weights)
            rng = np.random.default_rng(0)
            initializer_names = {i.name for i in model.graph.initializer} | set(weights)
            graph_inputs = [i for i in model.graph.input if i.name not in initializer_names]
            feeds, files = {}, []
            for i in graph_inputs:
                shape = [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]
                feeds[i.name] = rng.random(shape, dtype=np.float32)
                files.append(workspace / f"{name}-{i.name}.npy")
                np.save(files[-1], feeds[i.name])
            for threads in (int(t) for t in args.threads.split(",")):
                session = ort_session(model, weights, threads)
                ort_times, kiln_times = [], []
                for _ in range(args.rounds):
                    ort_times.append(ort_median_ms(session, feeds, args.runs))
                    kiln_times.append(kiln_median_ms(launcher, packed, files, list(feeds), threads, args.runs))
                ort_ms, kiln_ms = statistics.median(ort_times), statistics.median(kiln_times)
                rows.append((name, threads, ort_ms, kiln_ms, kiln_ms / ort_ms))
                print(f"{name:12s} {threads}t  onnxruntime {ort_ms:8.3f} ms  kiln {kiln_ms:8.3f} ms  "
                      f"ratio {kiln_ms / ort_ms:5.2f}", file=sys.stderr, flush=True)
    print(f"\n| model | threads | onnxruntime ms | kiln ms | kiln / onnxruntime |\n|---|---|---|---|---|")
    for name, threads, ort_ms, kiln_ms, ratio in rows:
        print(f"| {name} | {threads} | {ort_ms:.3f} | {kiln_ms:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    os.environ.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    main()
