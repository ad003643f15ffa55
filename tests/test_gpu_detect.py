"""Platform detection in a bundle holding cpu, cuda and rocm code, on this GPU-less machine:
the launcher says what it probed and why it skipped each GPU platform, falls back to cpu and
still answers correctly; stand-in vendor libraries exercise the fallback logic only."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from tool_skips import needs_tool

import onnx_models as M
from kiln.compiler import launcher
from kiln.compiler import driver
from kiln.toolchain.zig import zig_path

FIXTURES = Path(__file__).parent / "fixtures" / "gpu"
pytestmark = pytest.mark.skipif(os.path.exists("/dev/kfd"), reason="needs a machine without /dev/kfd")


def _shared_lib(src: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([zig_path(), "cc", "-target", "x86_64-linux-gnu.2.28", "-shared", "-fPIC", "-o", os.fspath(out),
                    os.fspath(src)], check=True)
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("gpu-bundle")
    model = work / "mlp.onnx"
    onnx.save(M.mlp(), model)
    driver.compile(model, name="mlp").write(work / "cpu")
    root = work / "mlp"
    (root / "bin").mkdir(parents=True)
    subprocess.run(launcher.link_argv(zig_path(), "linux-amd64", [os.fspath(work / "cpu" / "model.o")],
                                      os.fspath(root / "bin" / "mlp")), check=True)
    (root / "weights").mkdir()
    shutil.copy(work / "cpu" / "weights.safetensors", root / "weights" / "mlp.safetensors")
    driver.compile(model, "cuda", name="mlp").write(root / "share" / "cuda")
    driver.compile(model, "rocm", name="mlp").write(root / "share" / "rocm")
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    np.save(work / "x.npy", x)
    np.save(work / "ref.npy", M.run_onnxruntime(M.mlp(), {"input": x})[0])
    return root


def _run(bundle: Path, *args: str, env: dict | None = None, runner: list[str] | None = None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("KILN_") and k != "LD_LIBRARY_PATH"}
    full.update(env or {})
    x = bundle.parent / "x.npy"
    return subprocess.run([*(runner or []), os.fspath(bundle / "bin" / "mlp"), "--input", os.fspath(x), *args],
                          capture_output=True, text=True, env=full, timeout=120)


def _check_output(bundle: Path, out: Path) -> None:
    ref = np.load(bundle.parent / "ref.npy")
    np.testing.assert_allclose(np.load(out), ref, rtol=1e-4, atol=1e-4)


def test_launcher_does_not_link_gpu_runtimes(bundle):
    from elftools.elf.elffile import ELFFile

    with open(bundle / "bin" / "mlp", "rb") as f:
        needed = {t.needed for t in ELFFile(f).get_section_by_name(".dynamic").iter_tags() if t.entry.d_tag == "DT_NEEDED"}
    assert not any("cuda" in n or "hsa" in n for n in needed), needed


def test_no_driver_no_kfd_falls_back_to_cpu(bundle, tmp_path):
    r = _run(bundle, "--output", os.fspath(tmp_path / "y.npy"))
    assert r.returncode == 0, r.stderr
    assert "platform cpu (cuda: libcuda.so.1 not found; rocm: /dev/kfd absent)" in r.stderr
    _check_output(bundle, tmp_path / "y.npy")


def test_driver_without_device_falls_back_with_its_reason(bundle, tmp_path):
    lib = _shared_lib(FIXTURES / "stub_libcuda.c", tmp_path / "driver" / "libcuda.so.1")
    r = _run(bundle, "--output", os.fspath(tmp_path / "y.npy"), env={"LD_LIBRARY_PATH": os.fspath(lib.parent)})
    assert r.returncode == 0, r.stderr
    assert "cuda: cuInit: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected" in r.stderr
    _check_output(bundle, tmp_path / "y.npy")


def _stub_gpu(tmp_path: Path, cc: int, driver: int) -> dict:
    lib = _shared_lib(FIXTURES / "stub_libcuda.c", tmp_path / "driver" / "libcuda.so.1")
    return {"LD_LIBRARY_PATH": os.fspath(lib.parent), "STUB_CUDA_CC": str(cc), "STUB_CUDA_DRIVER": str(driver)}


def test_gpu_the_bundle_does_not_cover_falls_back(bundle, tmp_path):
    r = _run(bundle, "--output", os.fspath(tmp_path / "y.npy"), env=_stub_gpu(tmp_path, 70, 12040))
    assert r.returncode == 0, r.stderr
    assert "cuda: the GPU is sm_70; this bundle has code for sm_75, sm_80, sm_90 only" in r.stderr
    _check_output(bundle, tmp_path / "y.npy")


def test_driver_older_than_the_code_falls_back(bundle, tmp_path):
    manifest = json.loads((bundle / "share" / "cuda" / "manifest.json").read_text())
    assert manifest["min_cuda"] == {"cubin": 12000, "ptx": 10000}
    r = _run(bundle, "--output", os.fspath(tmp_path / "y.npy"), env=_stub_gpu(tmp_path, 80, 9020))
    assert r.returncode == 0, r.stderr
    assert "cuda: the driver supports CUDA 9.2; this bundle's cubins need 12.0, its PTX 10.0" in r.stderr
    _check_output(bundle, tmp_path / "y.npy")


def test_rejected_cubin_is_retried_as_ptx_with_the_jit_log(bundle, tmp_path):
    r = _run(bundle, env={**_stub_gpu(tmp_path, 86, 12040), "KILN_PLATFORM": "cuda"})
    assert r.returncode != 0
    assert ("cuda: loading sm_75.ptx failed: CUDA_ERROR_INVALID_PTX (218): stub: ptxas fatal   : stub JIT log "
            "ptxas fatal   : second line; "
            "sm_80.cubin was rejected: CUDA_ERROR_NO_BINARY_FOR_GPU (209): stub") in r.stderr


def test_driver_too_old_for_the_cubins_jits_the_ptx(bundle, tmp_path):
    r = _run(bundle, env={**_stub_gpu(tmp_path, 90, 11040), "KILN_PLATFORM": "cuda"})
    assert r.returncode != 0
    assert r.stderr.endswith("cuda: loading sm_75.ptx failed: CUDA_ERROR_INVALID_PTX (218): stub: ptxas fatal   : "
                             "stub JIT log ptxas fatal   : second line\n")


def test_forced_cuda_fails_clearly(bundle, tmp_path):
    r = _run(bundle, "--output", os.fspath(tmp_path / "y.npy"), env={"KILN_PLATFORM": "cuda"})
    assert r.returncode != 0
    assert "platform cuda was requested but is unusable here: libcuda.so.1 not found" in r.stderr


@needs_tool("bubblewrap", shutil.which("bwrap") is not None)
@pytest.mark.parametrize("forced", [False, True])
def test_gpu_arch_missing_from_bundle(bundle, tmp_path, forced):
    hsa = bundle / "lib" / "rocm" / "libhsa-runtime64.so.1"
    _shared_lib(FIXTURES / "stub_hsa.c", hsa)
    try:
        runner = ["bwrap", "--dev-bind", "/", "/", "--dev", "/dev", "--ro-bind", "/dev/null", "/dev/kfd",
                  "--bind", os.fspath(tmp_path), os.fspath(tmp_path)]
        r = _run(bundle, "--output", os.fspath(tmp_path / "y.npy"), runner=runner,
                 env={"KILN_PLATFORM": "rocm"} if forced else None)
    finally:
        hsa.unlink()
    message = "the GPU is gfx1030; this bundle has code objects for gfx90a, gfx942, gfx1100 only"
    assert message in r.stderr
    if forced:
        assert r.returncode != 0
    else:
        assert r.returncode == 0 and "platform cpu" in r.stderr
        _check_output(bundle, tmp_path / "y.npy")


def test_platform_help_and_errors_name_the_gpu_platforms(bundle):
    usage = _run(bundle, "--help")
    assert "cuda," in usage.stdout and "rocm, tpu, cpu-xla" in usage.stdout
    r = _run(bundle, "--platform", "tpu")
    assert r.returncode != 0
    assert "platform 'tpu' (from --platform) is not in this bundle; it has: auto, cpu, cuda, rocm" in r.stderr


def test_weight_file_the_manifest_names_is_checked_tensor_by_tensor(bundle, tmp_path):
    copy = tmp_path / "mlp"
    shutil.copytree(bundle, copy)
    shutil.copy(bundle.parent / "x.npy", tmp_path / "x.npy")
    manifest_path = copy / "share" / "cuda" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    (copy / "share" / "weights").mkdir()
    os.replace(copy / "share" / "cuda" / manifest["weights"]["file"], copy / "share" / "weights" / "shared.safetensors")
    manifest["weights"]["file"] = "../weights/shared.safetensors"
    manifest_path.write_text(json.dumps(manifest))
    env = {**_stub_gpu(tmp_path, 86, 12040), "KILN_PLATFORM": "cuda"}
    assert "sha256" not in _run(copy, env=env).stderr  # the shared file is found and passes
    manifest["weights"]["file"] = "../../weights/mlp.safetensors"  # the CPU's layout: other bytes
    manifest_path.write_text(json.dumps(manifest))
    r = _run(copy, env=env)
    first = manifest["weights"]["tensors"][0]["name"]
    assert r.returncode != 0 and r.stderr.strip().endswith(
        f"weights/mlp.safetensors: tensor '{first}' fails its sha256 check (not the file this platform was "
        "compiled with, or corrupt)")
