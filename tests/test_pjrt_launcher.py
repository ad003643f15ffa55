"""The launcher's PJRT side: plugin loading and version checks, one-line errors, platform
selection with the bundled libtpu, the executable cache, and no leaks under repeated runs."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from tool_skips import require_tool

import pjrt_harness
from onnx_models import mlp, single_op

pytestmark = pytest.mark.e2e

FAKE_PLUGIN = """
#include <stddef.h>
struct version { size_t struct_size; void *ext; int major, minor; };
static struct { size_t struct_size; void *ext; struct version version; void *fns[80]; } api = {
    sizeof api, NULL, {sizeof(struct version), NULL, MAJOR, 7}, {0}};
const void *GetPjrtApi(void) { return &api; }
"""


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    return pjrt_harness.link_launcher(tmp_path_factory.mktemp("pjrt-launcher"))


@pytest.fixture
def relu(launcher, tmp_path) -> Path:
    x = np.zeros((2, 3), np.float32)
    return pjrt_harness.bundle(launcher, single_op("Relu", [("x", x, False)]), tmp_path)


def shared_library(tmp_path: Path, source: str, name: str, defines: list[str] = ()) -> Path:
    from kiln.toolchain.zig import zig_path

    (tmp_path / f"{name}.c").write_text(source)
    out = tmp_path / f"{name}.so"
    subprocess.run([zig_path(), "cc", "-shared", "-fPIC", *defines, "-o", str(out), str(tmp_path / f"{name}.c")],
                   check=True, capture_output=True)
    return out


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kiln: ")
    return lines[0]


def save(tmp_path: Path, array: np.ndarray) -> str:
    np.save(tmp_path / "x.npy", array)
    return str(tmp_path / "x.npy")


def test_runs_and_says_which_plugin(relu, tmp_path):
    done = pjrt_harness.run(relu, ["--input", save(tmp_path, np.full((2, 3), -1, np.float32))])
    assert done.returncode == 0, done.stderr
    assert re.search(r"platform cpu-xla \(requested by --platform\), PJRT C API 0\.1\d\d, program compiled", done.stderr)


def test_plugin_for_another_major_version(relu, tmp_path):
    fake = shared_library(tmp_path, FAKE_PLUGIN, "fake", ["-DMAJOR=1"])
    done = pjrt_harness.run(relu, ["--input", save(tmp_path, np.zeros((2, 3), np.float32))],
                            {"KILN_PJRT_PLUGIN": str(fake)})
    line = one_line_error(done)
    assert "speaks PJRT C API 1.7" in line and "built for 0.x" in line


def test_library_without_get_pjrt_api(relu, tmp_path):
    lib = shared_library(tmp_path, "int not_a_plugin(void) { return 1; }\n", "plain")
    done = pjrt_harness.run(relu, ["--input", save(tmp_path, np.zeros((2, 3), np.float32))],
                            {"KILN_PJRT_PLUGIN": str(lib)})
    assert "is not a PJRT plugin: it has no GetPjrtApi symbol" in one_line_error(done)


def test_missing_plugin_file(relu, tmp_path):
    done = pjrt_harness.run(relu, [], {"KILN_PJRT_PLUGIN": str(tmp_path / "nope.so")})
    assert "cannot load PJRT plugin" in one_line_error(done)


def test_malformed_program(relu, tmp_path):
    (relu.parent.parent / "share" / "cpu-xla" / "model.mlir").write_text("module { this is not mlir }\n")
    done = pjrt_harness.run(relu, ["--input", save(tmp_path, np.zeros((2, 3), np.float32))])
    line = one_line_error(done)
    assert "compiling " in line and "model.mlir" in line and "error" in line


def test_wrong_shaped_input(relu, tmp_path):
    done = pjrt_harness.run(relu, ["--input", save(tmp_path, np.zeros((3, 2), np.float32))])
    assert "shape" in one_line_error(done)


def test_platform_not_in_bundle(relu):
    done = pjrt_harness.run(relu, ["--platform", "tpu"])
    assert "platform 'tpu' (from --platform) is not in this bundle; it has: auto, cpu, cpu-xla" in one_line_error(done)


def tpu_bundle(launcher: Path, tmp_path: Path) -> Path:
    """A bundle with the tpu platform: the StableHLO program and the pinned libtpu.so."""
    from kiln.toolchain.fetch import ensure

    exe = pjrt_harness.bundle(launcher, mlp(), tmp_path)
    (tmp_path / "share" / "cpu-xla").rename(tmp_path / "share" / "tpu")
    (tmp_path / "lib" / "tpu").mkdir(parents=True)
    os.symlink(ensure("libtpu", "amd64") / "libtpu" / "libtpu.so", tmp_path / "lib" / "tpu" / "libtpu.so")
    return exe


@pytest.mark.skipif(bool(list(Path("/dev").glob("accel*"))), reason="this machine has TPU device nodes")
def test_bundled_libtpu_falls_back_to_cpu_here(launcher, tmp_path):
    exe = tpu_bundle(launcher, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("KILN_PJRT_PLUGIN", "KILN_PLATFORM")}
    info = subprocess.run([str(exe), "--info"], capture_output=True, text=True, env=env, timeout=120)
    assert info.returncode == 0, info.stderr
    assert re.search(r"plugin:\s+tpu: \S+/lib/tpu/libtpu\.so \(PJRT C API 0\.(\d+)\)", info.stdout), info.stdout
    assert "platform:  cpu (tpu: no /dev/accel* or /dev/vfio device)" in info.stdout
    done = subprocess.run([str(exe), "--bench", "1"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "platform cpu (tpu: no /dev/accel* or /dev/vfio device)" in done.stderr


@pytest.mark.skipif(bool(list(Path("/dev").glob("accel*"))), reason="this machine has TPU device nodes")
def test_forced_tpu_without_a_device_fails_at_once(launcher, tmp_path):
    """Not after minutes of libtpu asking the GCE metadata server for its topology."""
    exe = tpu_bundle(launcher, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "KILN_PJRT_PLUGIN"}
    done = subprocess.run([str(exe), "--info"], capture_output=True, text=True, env={**env, "KILN_PLATFORM": "tpu"},
                          timeout=20)
    assert done.returncode == 1
    assert done.stderr == "kiln: platform tpu was requested but is unusable here: no /dev/accel* or /dev/vfio device\n"


def _fake_tpu_host(root: Path) -> list[str]:
    """bwrap arguments showing a TPU's device node and sysfs entries (Google's PCI vendor, a GCE host)."""
    (root / "class" / "accel" / "accel0" / "device").mkdir(parents=True)
    (root / "class" / "accel" / "accel0" / "device" / "vendor").write_text("0x1ae0\n")
    (root / "devices" / "virtual" / "dmi" / "id").mkdir(parents=True)
    (root / "devices" / "virtual" / "dmi" / "id" / "product_name").write_text("Google Compute Engine\n")
    return ["bwrap", "--dev-bind", "/", "/", "--bind", str(root), "/sys", "--dev", "/dev",
            "--ro-bind", "/dev/null", "/dev/accel0"]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_libtpu_logging_more_than_a_pipe_holds_is_drained(launcher, tmp_path):
    """The probe's child logs 256 KiB before failing: its reason arrives at once, not as a timeout."""
    from kiln.compiler.launcher import RUNTIME_DIR

    exe = tpu_bundle(launcher, tmp_path / "bundle")
    libtpu = tmp_path / "bundle" / "lib" / "tpu" / "libtpu.so"
    libtpu.unlink()
    source = (Path(__file__).parent / "fixtures" / "pjrt" / "chatty_libtpu.c").read_text()
    shutil.copy(shared_library(tmp_path, source, "chatty_libtpu", ["-I", str(RUNTIME_DIR)]), libtpu)
    env = {k: v for k, v in os.environ.items() if k not in ("KILN_PJRT_PLUGIN", "KILN_PLATFORM")}
    started = time.monotonic()
    done = subprocess.run([*_fake_tpu_host(tmp_path / "sys"), str(exe), "--bench", "1"], capture_output=True,
                          text=True, env={**env, "KILN_TPU_TIMEOUT": "30"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("platform cpu (tpu: libtpu: stub libtpu: TPU initialization failed: no usable TPU)"
            in done.stderr), done.stderr[-2000:]
    assert time.monotonic() - started < 30


def test_cache_dir_skips_compilation(relu, tmp_path):
    x = save(tmp_path, np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
    cache = tmp_path / "cache"
    first = pjrt_harness.run(relu, ["--input", x, "--cache-dir", str(cache), "--output", f"y0={tmp_path / 'a.npy'}"])
    second = pjrt_harness.run(relu, ["--input", x, "--cache-dir", str(cache), "--output", f"y0={tmp_path / 'b.npy'}"])
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "program compiled" in first.stderr and "program loaded from the cache" in second.stderr
    assert len(list(cache.glob("*.pjrt"))) == 1
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_no_leaks_under_repeated_runs(tmp_path):
    from kiln.compiler.launcher import asan_runtime

    require_tool("gcc's ASan runtime", asan_runtime() is not None)
    exe = pjrt_harness.bundle(pjrt_harness.link_launcher(tmp_path, sanitize=True), mlp(), tmp_path / "b")
    # glibc's thread-exit destructor list for the plugin's own worker threads is not the launcher's.
    (tmp_path / "lsan.supp").write_text("leak:__cxa_thread_atexit_impl\n")
    env = {"LSAN_OPTIONS": f"use_tls=0:suppressions={tmp_path / 'lsan.supp'}", "ASAN_OPTIONS": "detect_leaks=1"}
    done = pjrt_harness.run(exe, ["--bench", "50"], env)
    assert done.returncode == 0, done.stderr
    assert "ERROR: " not in done.stderr and "leaked" not in done.stderr
