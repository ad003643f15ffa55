"""ONNX's node conformance suite (bench/onnx_conformance.py) against its committed reports: the run
survives every case, passes at least as many cases, and every case a report lists as passing still
passes. The whole suite takes about 15 s per backend on 2 cores; the cases are generated once per onnx
version into the kiln cache, which also holds the stablehlo runner's zig and PJRT plugin."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from conformance_report import parse_cases  # noqa: E402

pytestmark = pytest.mark.e2e
REPORTS = {"cpu": REPO / "bench" / "onnx_conformance.md", "gpu": REPO / "bench" / "onnx_conformance_gpu.md",
           "stablehlo": REPO / "bench" / "onnx_conformance_stablehlo.md"}
CRASHES = ("worker process died", "timed out")


@pytest.mark.parametrize("backend", sorted(REPORTS))
def test_conformance_keeps_the_committed_report(tmp_path, backend):
    out = tmp_path / "report.md"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "onnx_conformance.py"), "--backend", backend,
                           "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    committed, fresh = parse_cases(REPORTS[backend].read_text()), parse_cases(out.read_text())
    assert set(fresh) == set(committed), "the generated case set differs from the committed report's"
    crashed = sorted(name for name, (_, reason) in fresh.items() if any(c in reason for c in CRASHES))
    assert not crashed, f"cases crashed or hung kiln: {crashed}"
    passing = {name for name, (status, _) in committed.items() if status == "pass"}
    regressed = sorted(name for name in passing if fresh[name][0] != "pass")
    assert not regressed, "no longer pass: " + "; ".join(f"{n}: {fresh[n][1]}" for n in regressed)
    assert sum(status == "pass" for status, _ in fresh.values()) >= len(passing)
