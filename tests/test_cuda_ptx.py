"""Every kernel of every example model as PTX through the pinned ptxas for the default SMs (sm_75,
sm_80, sm_90): it assembles, uses no more registers than a block allows, and spills nothing; the cubins
are in the format the manifest's driver floor says, as ptxas itself reports its release."""
from __future__ import annotations

import json
import re
from pathlib import Path

import onnx
import pytest

import onnx_models as M
from kiln.compiler.backend.gpu import nvptx
from kiln.compiler.errors import CompileError
from kiln.compiler import driver
from kiln.compiler.launcher import RUNTIME_DIR
from kiln.compiler.platforms import PLATFORMS, resolve
from kiln.toolchain.fetch import ensure
from kiln.toolchain.lockfile import load
from kiln.toolchain.ptxas import PtxasError, assemble, release

DEFAULT_SMS = ("sm_75", "sm_80", "sm_90")
# The cubin ELF header's e_ident[EI_OSABI], e_ident[EI_ABIVERSION] per CUDA major release: CUDA 13's
# format needs a R580 driver (CUDA 13.0 release notes).
CUBIN_ABI = {12: (0x33, 7), 13: (0x41, 8)}

MODELS = ["mlp", "mnist_cnn", "resnet", "mobilenet_v2", "transformer", "alexnet_like"]


@pytest.mark.parametrize("name", MODELS)
def test_ptxas_accepts_every_kernel_without_spills(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(getattr(M, name)(), path)
    compiled = driver.compile(path, "cuda")
    compiled.write(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.json", "sm_75.cubin", "sm_75.ptx", "sm_80.cubin", "sm_90.cubin", "weights.safetensors"]
    for k in manifest["kernels"]:
        for sm in DEFAULT_SMS:
            stats = k["targets"][sm]
            assert stats["spill_store_bytes"] == 0 and stats["spill_load_bytes"] == 0, (k["name"], sm)
            assert 0 < stats["registers"] <= 65536 // k["block"], (k["name"], sm, stats)
    ptx = (tmp_path / "out" / "sm_75.ptx").read_text()
    assert ".version 6.3" in ptx and ".target sm_75" in ptx
    assert manifest["ptx"] == {"file": "sm_75.ptx", "sm": "sm_75"}


def test_cubins_load_on_the_driver_floor_the_manifest_names(tmp_path):
    """ptxas's own release decides the cubin format, and the format decides the driver; the pinned
    ptxas must be a CUDA 12 one so R525-R570 fleets load the cubins."""
    major, _ = release()
    assert major == 12
    path = tmp_path / "mlp.onnx"
    onnx.save(M.mlp(), path)
    driver.compile(path, "cuda:sm_80,sm_90").write(tmp_path / "out")
    for sm in ("sm_80", "sm_90"):
        ident = (tmp_path / "out" / f"{sm}.cubin").read_bytes()[:16]
        assert ident[:4] == b"\x7fELF" and (ident[7], ident[8]) == CUBIN_ABI[major], sm
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["min_driver"] == {"cubin": "525.60.13", "ptx": "450.36.06"}
    assert manifest["min_cuda"] == {"cubin": 12000, "ptx": 11000}
    assert manifest["ptx"] == {"file": "sm_80.ptx", "sm": "sm_80"}
    assert ".version 7.0" in (tmp_path / "out" / "sm_80.ptx").read_text()


def test_lowest_ptx_isa_per_sm():
    text = nvptx.module_ir([])
    assert ".version 7.0" in nvptx.emit_ptx(text, "sm_80")
    assert ".version 7.8" in nvptx.emit_ptx(text, "sm_89")


def test_platform_selection(tmp_path):
    assert resolve("cuda") == (PLATFORMS["cuda"], DEFAULT_SMS)
    assert resolve("cuda:sm_89,sm_80,sm_89") == (PLATFORMS["cuda"], ("sm_89", "sm_80"))
    assert resolve("rocm:gfx942") == (PLATFORMS["rocm"], ("gfx942",))
    with pytest.raises(CompileError, match="unknown cuda target sm_10"):
        driver.compile(tmp_path / "model.onnx", "cuda:sm_10")


def test_ptxas_error_carries_its_message():
    with pytest.raises(PtxasError, match="ptxas -arch=sm_80 failed:.*"):
        assemble(".version 7.0\n.target sm_80\n.address_size 64\n.visible .entry k() { bogus; }\n", "sm_80")


def test_launcher_and_stub_constants_match_the_vendor_cuda_h():
    """The launcher declares the driver API itself; the pinned CUDA runtime wheel's cuda.h is the
    oracle for its constants, the stub libcuda's error codes and the cuDriverGetVersion encoding."""
    cuda_h = next(ensure("nvidia-cuda-runtime", "amd64").glob("nvidia/*/include/cuda.h")).read_text()
    vendor = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*(CU\w+)\s*=\s*(\d+),", cuda_h, re.M)}
    stub = Path(__file__).parent / "fixtures" / "gpu" / "stub_libcuda.c"
    ours = {**_defines(RUNTIME_DIR / "cuda.c"),
            **{f"CUDA_ERROR_{k}": v for k, v in _defines(stub).items() if k != "CU_JIT_ERROR_LOG_BUFFER"}}
    assert len(ours) >= 7
    assert {k: vendor.get(k) for k in ours} == ours
    release = ".".join(load().find("nvidia-cuda-runtime", "amd64").version.split(".")[:2])
    version = int(re.search(r"^#define CUDA_VERSION (\d+)", cuda_h, re.M).group(1))
    assert nvptx.driver_api_version(release) == version


def _defines(path) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^#define (\w+) (\d+)$", path.read_text(), re.M)}
