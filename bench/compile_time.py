"""Compile time and peak memory of zoo-sized models, each compiled from scratch in a fresh process.

    python bench/compile_time.py [--models resnet50,densenet121,encoder] [--platform cpu] [--keep DIR]

The models come from bench/zoo_models.py (random weights, fixed seeds; the encoder's 440 MB of
weights in a safetensors file). Each is compiled by `python -m kiln.compiler compile` into an empty
directory, as a build with a clean cache runs it; printed per model: wall seconds, CPU seconds (user +
system, the LLVM workers' included: on a shared machine the steadier number), the peak RSS of the
compiler process and of the largest of its LLVM workers, the weights' size, and the budget (2 GB plus
twice the weights)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo_models  # noqa: E402

MODELS = ("resnet50", "densenet121", "encoder")


def write_model(name: str, outdir: Path) -> tuple[Path, Path | None]:
    if name == "encoder":
        return zoo_models.write_encoder(outdir)
    path = outdir / f"{name}.onnx"
    import onnx
    onnx.save(getattr(zoo_models, name)(), path)
    return path, None


def compile_once(model: Path, weights: Path | None, platform: str, out: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB of the largest process) of one compile in a fresh
    process."""
    argv = [sys.executable, "-m", "kiln.compiler", "compile", str(model), "--platform", platform, "-o", str(out)]
    if weights is not None:
        argv += ["--weights", str(weights)]
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"compiling {model.name} failed (exit {os.waitstatus_to_exitcode(status)})")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--platform", default="cpu")
    p.add_argument("--keep", type=Path, help="write models and outputs here instead of a temp dir")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        print("| model | compile s | CPU s | peak RSS MB (largest process) | weights MB | budget MB |")
        print("|---|---|---|---|---|---|")
        for name in args.models.split(","):
            (root / name).mkdir(parents=True, exist_ok=True)
            model, weights = write_model(name, root / name)
            seconds, cpu, peak = compile_once(model, weights, args.platform, root / name / "out")
            weights_mb = (root / name / "out" / "weights.safetensors").stat().st_size / 2**20
            print(f"| {name} | {seconds:.1f} | {cpu:.1f} | {peak:.0f} | {weights_mb:.0f} | "
                  f"{2048 + 2 * weights_mb:.0f} |", flush=True)


if __name__ == "__main__":
    main()
