"""Every kernel of every example model as PTX through the pinned ptxas for sm_80 and sm_90: it
assembles, uses no more registers than a block allows, and spills nothing."""
from __future__ import annotations

import json

import onnx
import pytest

import onnx_models as M
from kiln.compiler.backend.gpu import nvptx
from kiln.compiler.errors import CompileError
from kiln.compiler import driver
from kiln.compiler.platforms import PLATFORMS, resolve
from kiln.toolchain.ptxas import PtxasError, assemble

MODELS = ["mlp", "mnist_cnn", "resnet", "mobilenet_v2", "transformer"]


@pytest.mark.parametrize("name", MODELS)
def test_ptxas_accepts_every_kernel_without_spills(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(getattr(M, name)(), path)
    compiled = driver.compile(path, "cuda:sm_80,sm_90")
    compiled.write(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.json", "sm_80.cubin", "sm_90.cubin", "sm_90.ptx", "weights.safetensors"]
    for k in manifest["kernels"]:
        for sm in ("sm_80", "sm_90"):
            stats = k["targets"][sm]
            assert stats["spill_store_bytes"] == 0 and stats["spill_load_bytes"] == 0, (k["name"], sm)
            assert 0 < stats["registers"] <= 65536 // k["block"], (k["name"], sm, stats)
    ptx = (tmp_path / "out" / "sm_90.ptx").read_text()
    assert ".version 7.8" in ptx and ".target sm_90" in ptx
    assert manifest["min_driver"] == {"cubin": "580.65.06", "ptx": "520.61.05"}


def test_lowest_ptx_isa_per_sm():
    text = nvptx.module_ir([])
    assert ".version 7.0" in nvptx.emit_ptx(text, "sm_80")
    assert ".version 7.8" in nvptx.emit_ptx(text, "sm_89")


def test_platform_selection(tmp_path):
    assert resolve("cuda") == (PLATFORMS["cuda"], ("sm_80", "sm_90"))
    assert resolve("cuda:sm_89,sm_80,sm_89") == (PLATFORMS["cuda"], ("sm_89", "sm_80"))
    assert resolve("rocm:gfx942") == (PLATFORMS["rocm"], ("gfx942",))
    with pytest.raises(CompileError, match="unknown cuda target sm_10"):
        driver.compile(tmp_path / "model.onnx", "cuda:sm_10")


def test_ptxas_error_carries_its_message():
    with pytest.raises(PtxasError, match="ptxas -arch=sm_80 failed:.*"):
        assemble(".version 7.0\n.target sm_80\n.address_size 64\n.visible .entry k() { bogus; }\n", "sm_80")
