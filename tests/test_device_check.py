"""tests/device/run.sh, the check for a GPU or TPU host, run here: on XLA's CPU plugin (a PJRT
platform this machine can run, so the build, compare, bench and table path is the real one) and on
a platform this machine lacks (the clean SKIP)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
RUN = Path(__file__).parent / "device" / "run.sh"


def device_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUN), *args], capture_output=True, text=True, timeout=900)


def test_runs_compares_and_tables_a_usable_platform():
    done = device_check("--platforms", "cpu-xla", "--models", "mlp", "--runs", "5")
    assert done.returncode == 0, done.stderr
    row = done.stdout.splitlines()[-1].split(" | ")
    assert row[0:2] == ["| mlp", "cpu-xla"] and "PJRT C API" in row[2]
    assert float(row[3]) <= 1e-4


@pytest.mark.skipif(Path("/dev/kfd").exists(), reason="this machine has an AMD GPU")
def test_skips_with_the_launchers_reason():
    done = device_check("--platforms", "rocm", "--models", "mlp")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "SKIP: no usable accelerator here (rocm: /dev/kfd absent)"
