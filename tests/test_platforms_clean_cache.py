"""Every platform README lists builds from an empty cache, as on a fresh machine, and the archive runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.toolchain.zig import zig_path
from test_mnist_e2e import EXAMPLES, SAMPLES, kiln, predicted_class, reference_classes, unpack

pytestmark = pytest.mark.e2e
HSA_PROBE = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *hsa = dlopen(argv[1], RTLD_NOW);
    if (!hsa) { printf("dlopen: %s\n", dlerror()); return 1; }
    int (*hsa_init)(void) = (int (*)(void))dlsym(hsa, "hsa_init");
    printf("hsa_init returned 0x%x\n", hsa_init());  /* no GPU: an error status, not a crash */
    return 0;
}
"""


@pytest.fixture
def examples_copy(tmp_path) -> Path:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("kiln-out"))
    return copy


def run(launcher, sample, platform: str, *prefix: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*prefix, str(launcher), "--threads", "1", "--input", str(sample)],
                          env={**os.environ, "KILN_PLATFORM": platform}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_every_amd64_platform_from_an_empty_cache(examples_copy, tmp_path):
    platforms = "cpu,cuda,rocm,tpu,cpu-xla,linux-amd64"
    kiln("build", "//mnist:archive", f"--platform={platforms}", cache=tmp_path / "empty", cwd=examples_copy)
    out = examples_copy / "kiln-out/linux-amd64-cpu-cpu-xla-cuda-rocm-tpu/mnist/mnist.tar.gz"
    launcher = unpack(out, tmp_path / "server")
    bundle = launcher.parent.parent
    for name in ("lib/cpu-xla/pjrt_c_api_cpu_plugin.so", "lib/cpu-xla/libstdc++.so.6", "lib/tpu/libtpu.so",
                 "lib/rocm/libhsa-runtime64.so.1", "share/cuda/sm_75.ptx", "share/tpu/model.mlir"):
        assert (bundle / name).is_file(), name
    sample = SAMPLES[7]
    expected = reference_classes()[sample.name]
    for platform in ("cpu", "cpu-xla"):
        done = run(launcher, sample, platform)
        assert predicted_class(done.stdout) == expected and f"platform {platform}" in done.stderr


def test_arm64_host_from_an_empty_cache(examples_copy, tmp_path):
    qemu = shutil.which("qemu-aarch64")
    if not qemu or not os.path.exists("/lib/ld-linux-aarch64.so.1"):
        pytest.skip("qemu-user or libc6:arm64 is not installed")
    # ptxas runs on the build machine: the cuda compile must not pick the arm64 wheel's ptxas.
    kiln("build", "//mnist:archive", "--platform=cpu,cuda,rocm,linux-arm64", cache=tmp_path / "empty",
         cwd=examples_copy)
    launcher = unpack(examples_copy / "kiln-out/linux-arm64-cpu-cuda-rocm/mnist/mnist.tar.gz", tmp_path / "srv")
    sample = SAMPLES[2]
    done = run(launcher, sample, "cpu", qemu, "-L", "/")
    assert predicted_class(done.stdout) == reference_classes()[sample.name]
    # ROCm 6.1's runtime, built against glibc 2.41, loads on Debian 12's arm64 glibc 2.36 and starts
    probe = tmp_path / "hsa_probe"
    (tmp_path / "hsa_probe.c").write_text(HSA_PROBE)
    subprocess.run([zig_path(), "cc", "-target", "aarch64-linux-gnu.2.28", str(tmp_path / "hsa_probe.c"), "-o",
                    str(probe), "-ldl"], check=True)
    hsa = launcher.parent.parent / "lib" / "rocm" / "libhsa-runtime64.so.1"
    loaded = subprocess.run([qemu, "-L", "/", str(probe), str(hsa)], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and loaded.stdout.startswith("hsa_init returned 0x"), loaded.stdout


def test_a_platform_with_no_pin_for_the_host_is_one_line(examples_copy, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "kiln.build_rules", "build", "//mnist:archive", "--platform=cpu-xla,linux-arm64"], cwd=examples_copy,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}, capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == "ERROR: no pinned runtime for platform cpu-xla on arm64 in lock.toml"
