"""Every example model as AMDGPU code objects for gfx90a, gfx942 and gfx1100: linked by ld.lld
and structurally sound (AMDGPU machine, arch in e_flags, a .kd per kernel, metadata note)."""
from __future__ import annotations

import io
import json

import onnx
import pytest
from elftools.elf.elffile import ELFFile

import onnx_models as M
from kiln.compiler.backend.gpu import codeobject
from kiln.compiler.errors import CompileError
from kiln.compiler import driver

ARCHS = {"gfx90a": 0x3F, "gfx942": 0x4C, "gfx1100": 0x41}


@pytest.mark.parametrize("name", ["mlp", "mnist_cnn", "resnet", "mobilenet_v2", "transformer", "alexnet_like"])
def test_code_objects(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(getattr(M, name)(), path)
    compiled = driver.compile(path, "rocm")
    compiled.write(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["targets"] == list(ARCHS)
    names = [k["name"] for k in manifest["kernels"]]
    for arch, mach in ARCHS.items():
        data = (tmp_path / "out" / f"{arch}.co").read_bytes()
        elf = ELFFile(io.BytesIO(data))
        assert elf.header.e_machine == "EM_AMDGPU" and elf.header.e_flags & 0xFF == mach
        symbols = {s.name for s in elf.get_section_by_name(".dynsym").iter_symbols()}
        assert {f"{n}.kd" for n in names} <= symbols
        codeobject.check(data, arch, names)


def test_check_rejects_wrong_arch_and_missing_kernel(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(M.mlp(), path)
    compiled = driver.compile(path, "rocm:gfx90a")
    data = compiled.code.files()["gfx90a.co"]
    with pytest.raises(CompileError, match="EF_AMDGPU_MACH"):
        codeobject.check(data, "gfx942", [])
    with pytest.raises(CompileError, match="no kernel descriptor for nope"):
        codeobject.check(data, "gfx90a", ["nope"])
    v6 = data[:8] + bytes([4]) + data[9:]  # LLVM's default code object v6, which the 5.2 loader refused
    with pytest.raises(CompileError, match="OS/ABI 64 version 4, expected AMDHSA code object v4"):
        codeobject.check(v6, "gfx90a", [])
