"""The README's main job: build //mnist:archive, unpack it on a 'bare server', run it there."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from tool_skips import require_tool

from conftest import REPO

EXAMPLES = REPO / "examples"
SAMPLES = sorted((EXAMPLES / "mnist" / "samples").glob("digit_*.npy"))
pytestmark = pytest.mark.e2e


def kiln(*args: str, cache: Path, cwd: Path = EXAMPLES) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def examples_copy(tmp_path_factory) -> Path:
    """A private copy of the examples workspace, so tests never write into the repository."""
    copy = tmp_path_factory.mktemp("examples") / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("kiln-out"))
    return copy


def unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive, mode="r:gz") as tar:
        tar.extractall(into, filter="tar")
    return into / "mnist" / "bin" / "mnist"


def reference_classes() -> dict[str, int]:
    import onnxruntime as ort
    # The initializers are external data inside mnist.safetensors, so onnxruntime reads the pair as it is.
    session = ort.InferenceSession(str(EXAMPLES / "mnist" / "mnist.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return {p.name: int(np.argmax(session.run(None, {name: np.load(p)})[0])) for p in SAMPLES}


def predicted_class(stdout: str) -> int:
    """First class of the launcher's top-5 listing (`  7  0.9981` or `class 7: ...`)."""
    for line in stdout.splitlines():
        digits = [w.strip(":#") for w in line.split() if w.strip(":#").isdigit()]
        if digits:
            return int(digits[0])
    raise AssertionError(f"no class in output:\n{stdout}")


def glibc_binds() -> list[str]:
    """The few host glibc files the launcher needs: the loader, libc, libm (a minimal sysroot)."""
    binds = []
    for path in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libm.so.6",
                 "/lib/x86_64-linux-gnu/libpthread.so.0", "/lib/x86_64-linux-gnu/libdl.so.2"):
        if os.path.exists(path):
            binds += ["--ro-bind", os.path.realpath(path), path]
    return binds


def test_archive_runs_in_a_bare_sandbox(examples_copy, kiln_cache, tmp_path):
    require_tool("bubblewrap", bool(shutil.which("bwrap")))
    kiln("build", "//mnist:archive", "--platform=cpu,linux-amd64", cache=kiln_cache, cwd=examples_copy)
    server = tmp_path / "server"
    unpack(examples_copy / "kiln-out/linux-amd64-cpu/mnist/mnist.tar.gz", server)
    expected = reference_classes()
    for sample in SAMPLES:
        done = run_bare(server, sample)
        assert predicted_class(done.stdout) == expected[sample.name], (sample.name, done.stdout)


def run_bare(server: Path, sample: Path) -> subprocess.CompletedProcess:
    """The unpacked launcher on `sample`, in a sandbox holding only the bundle and a minimal glibc."""
    shutil.copy(sample, server / sample.name)
    done = subprocess.run(["bwrap", "--unshare-all", "--bind", str(server), "/srv", "--proc", "/proc",
                           "--dev", "/dev", *glibc_binds(), "--chdir", "/srv",
                           "/srv/mnist/bin/mnist", "--input", sample.name], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_gpu_archive_ships_kernels_and_trimmed_hsa_and_runs_on_cpu(examples_copy, kiln_cache, tmp_path):
    require_tool("bubblewrap", bool(shutil.which("bwrap")))
    built = kiln("build", "//mnist:archive", "--platform=cuda,rocm,linux-amd64", cache=kiln_cache, cwd=examples_copy)
    assert "INFO: rocm: kept 10 of " in built.stderr and "removed); needs glibc >=" in built.stderr
    server = tmp_path / "server"
    unpack(examples_copy / "kiln-out/linux-amd64-cpu-cuda-rocm/mnist/mnist.tar.gz", server)
    bundle = server / "mnist"
    for name in ("share/cuda/sm_75.cubin", "share/cuda/sm_80.cubin", "share/cuda/sm_90.cubin",
                 "share/cuda/sm_75.ptx",
                 "share/rocm/gfx90a.co", "share/rocm/gfx942.co", "share/rocm/gfx1100.co",
                 "lib/rocm/libhsa-runtime64.so.1"):
        assert (bundle / name).is_file(), name
    weight_files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*.safetensors"))
    assert len(weight_files) == 2 and "weights/mnist.safetensors" in weight_files  # cuda and rocm share one
    cuda, rocm = (json.loads((bundle / "share" / p / "manifest.json").read_text())["weights"] for p in ("cuda", "rocm"))
    assert cuda["file"] == rocm["file"] and (bundle / "share" / "cuda" / cuda["file"]).is_file()
    report = json.loads((bundle / "share" / "weights.json").read_text())
    assert [f["platforms"] for f in report["files"]] == [["cpu"], ["cuda", "rocm"]] and "why" in report["files"][1]
    kept = sum(p.stat().st_size for p in (bundle / "lib" / "rocm").iterdir())
    assert kept < 10_000_000 and not list((bundle / "lib").rglob("libamdhip64*"))
    done = run_bare(server, SAMPLES[4])
    assert predicted_class(done.stdout) == reference_classes()[SAMPLES[4].name]
    assert "cuda: libcuda.so.1 not found" in done.stderr and "rocm: /dev/kfd absent" in done.stderr


def test_arm64_launcher_under_qemu(examples_copy, kiln_cache, tmp_path):
    qemu = shutil.which("qemu-aarch64")
    require_tool("qemu-user and libc6:arm64", bool(qemu) and os.path.exists("/lib/ld-linux-aarch64.so.1"))
    kiln("build", "//mnist:archive", "--platform=cpu,linux-arm64", cache=kiln_cache, cwd=examples_copy)
    launcher = unpack(examples_copy / "kiln-out/linux-arm64-cpu/mnist/mnist.tar.gz", tmp_path)
    expected = reference_classes()
    for sample in SAMPLES[:4]:
        done = subprocess.run([qemu, "-L", "/", str(launcher), "--threads", "1", "--input", str(sample)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert predicted_class(done.stdout) == expected[sample.name]


def test_two_clean_builds_give_identical_archives(examples_copy, tmp_path):
    digests = []
    for attempt in range(2):
        cache = tmp_path / f"cache{attempt}"
        kiln("clean", cache=cache, cwd=examples_copy)
        kiln("build", "//mnist:archive", cache=cache, cwd=examples_copy)
        archive = examples_copy / "kiln-out/linux-amd64-cpu/mnist/mnist.tar.gz"
        digests.append(hashlib.sha256(archive.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_kiln_run_classifies_a_sample(examples_copy, kiln_cache):
    sample = EXAMPLES / "mnist" / "samples" / "digit_3.npy"
    done = kiln("run", "//mnist", "--", "--input", str(sample), cache=kiln_cache, cwd=examples_copy)
    assert predicted_class(done.stdout) == reference_classes()["digit_3.npy"]


def test_archive_carries_an_sbom_of_the_model(examples_copy, kiln_cache, tmp_path):
    import json
    kiln("build", "//mnist:archive", cache=kiln_cache, cwd=examples_copy)
    unpack(examples_copy / "kiln-out/linux-amd64-cpu/mnist/mnist.tar.gz", tmp_path)
    document = json.loads((tmp_path / "mnist/share/sbom.spdx.json").read_text())
    assert document["spdxVersion"] == "SPDX-2.3"
    checksums = {p["name"]: p["checksums"][0]["checksumValue"] for p in document["packages"] if p.get("checksums")}
    onnx_digest = hashlib.sha256((EXAMPLES / "mnist" / "mnist.onnx").read_bytes()).hexdigest()
    assert checksums["mnist.onnx"] == onnx_digest
    # The toolchain by what it built for: nothing of the build host's own zig binary.
    zig = next(p for p in document["packages"] if p["name"] == "ziglang")
    assert "checksums" not in zig and zig["comment"] == "kiln toolchain, built code for linux-amd64"


def test_kiln_why_and_fetch(examples_copy, kiln_cache):
    why = kiln("why", "//mnist:archive", "libhsa-runtime64.so.1", cache=kiln_cache, cwd=examples_copy).stdout
    assert "is not in the bundle of //mnist:archive" in why
    fetched = kiln("fetch", "//mnist:image", cache=kiln_cache, cwd=examples_copy).stderr
    assert "libc6 (amd64)" in fetched


def test_kiln_lock_unknown_name(examples_copy, kiln_cache):
    env = {**os.environ, "XDG_CACHE_HOME": str(kiln_cache)}
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules", "lock", "--update", "no-such-package"],
                          cwd=examples_copy, env=env, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == "ERROR: no-such-package is not in lock.toml"
