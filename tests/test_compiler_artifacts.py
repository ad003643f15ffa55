"""The compile outputs: ELF objects for both hosts, the kiln_model descriptor, the weights
file layout, the manifest, determinism, and the inspect command."""
from __future__ import annotations

import ctypes
import hashlib
import json
import struct
import subprocess
import sys

import numpy as np
import onnx
import pytest
from elftools.elf.descriptions import describe_reloc_type
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from safetensors.numpy import load_file

import onnx_models as M
from kiln.compiler import driver
from kiln.compiler.inspect import inspect_model
from kiln.compiler.jit import JitModel


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    d = tmp_path_factory.mktemp("cnn")
    onnx.save(M.mnist_cnn(), d / "mnist.onnx")
    return d / "mnist.onnx"


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """Big enough that its kernels split work over the pool (mnist's are too small)."""
    d = tmp_path_factory.mktemp("resnet")
    onnx.save(M.resnet(), d / "resnet.onnx")
    return d / "resnet.onnx"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiln.compiler", *args], capture_output=True, text=True)


@pytest.mark.parametrize("host,machine,bad_relocs", [
    ("linux-amd64", "EM_X86_64", {"R_X86_64_32", "R_X86_64_32S"}),
    ("linux-arm64", "EM_AARCH64", {"R_AARCH64_ABS32"}),
])
def test_object_for_each_host(tmp_path, resnet, host, machine, bad_relocs):
    r = _cli("compile", "--platform", "cpu", "--host", host, str(resnet), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "out" / "model.o", "rb") as fh:
        elf = ELFFile(fh)
        assert elf["e_machine"] == machine and elf["e_type"] == "ET_REL"
        symbols = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}
        model = symbols["kiln_model"]
        assert model["st_info"]["bind"] == "STB_GLOBAL" and model["st_shndx"] != "SHN_UNDEF"
        assert symbols["kiln_parallel_for"]["st_shndx"] == "SHN_UNDEF"
        undefined = {n for n, s in symbols.items() if n and s["st_shndx"] == "SHN_UNDEF"}
        assert undefined <= {"kiln_parallel_for", "memset", "memcpy", "memmove"}, undefined
        relocs = {describe_reloc_type(r.entry["r_info_type"], elf) for s in elf.iter_sections()
                  if isinstance(s, RelocationSection) for r in s.iter_relocations()}
        assert not relocs & bad_relocs, relocs


def test_outputs_are_deterministic(tmp_path, cnn):
    for d in ("a", "b"):
        assert _cli("compile", str(cnn), "-o", str(tmp_path / d)).returncode == 0
    for name in ("model.o", "weights.safetensors", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert str(tmp_path) not in (tmp_path / "a" / "manifest.json").read_text()


def test_weights_file_layout(tmp_path, cnn):
    driver.compile(cnn).write(tmp_path)
    data = (tmp_path / "weights.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert (8 + n) % 64 == 0
    header = json.loads(data[8:8 + n])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["weights"]["data_offset"] == 8 + n
    loaded = load_file(tmp_path / "weights.safetensors")
    section = data[8 + n:]
    assert len(section) == manifest["weights"]["data_bytes"]
    for t in manifest["weights"]["tensors"]:
        assert t["offset"] % 64 == 0
        assert header[t["name"]]["data_offsets"] == [t["offset"], t["offset"] + t["nbytes"]]
        raw = section[t["offset"]:t["offset"] + t["nbytes"]]
        assert hashlib.sha256(raw).hexdigest() == t["sha256"]
        assert loaded[t["name"]].shape == tuple(t["shape"])


def test_manifest_schema(tmp_path, cnn):
    driver.compile(cnn, name="digits").write(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["name"] == "digits" and m["platform"] == "cpu" and m["host"] == "linux-amd64"
    assert m["inputs"] == [{"name": "input", "dtype": "f32", "shape": [1, 1, 28, 28]}]
    assert m["outputs"] == [{"name": "logits", "dtype": "f32", "shape": [1, 10]}]
    assert [v["name"] for v in m["variants"]] == ["x86-64-v4", "x86-64-v3", "x86-64-v2"]
    assert m["scratch_bytes"] > 0 and m["flops"] > 1_000_000
    obj = (tmp_path / "model.o").read_bytes()
    assert m["object"] == {"file": "model.o", "sha256": hashlib.sha256(obj).hexdigest()}


class TensorDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_uint32), ("rank", ctypes.c_uint32),
                ("shape", ctypes.c_int64 * 8)]


class WeightDesc(ctypes.Structure):
    _fields_ = TensorDesc._fields_ + [("offset", ctypes.c_uint64), ("nbytes", ctypes.c_uint64),
                                      ("sha256", ctypes.c_uint8 * 32)]


class VariantDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("required_features", ctypes.c_uint32),
                ("entry", ctypes.c_void_p)]


class ModelDesc(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("model_name", ctypes.c_char_p),
                ("n_inputs", ctypes.c_uint32), ("inputs", ctypes.POINTER(TensorDesc)),
                ("n_outputs", ctypes.c_uint32), ("outputs", ctypes.POINTER(TensorDesc)),
                ("n_weights", ctypes.c_uint32), ("weights", ctypes.POINTER(WeightDesc)),
                ("weights_data_bytes", ctypes.c_uint64), ("scratch_bytes", ctypes.c_uint64),
                ("n_variants", ctypes.c_uint32), ("variants", ctypes.POINTER(VariantDesc))]


def test_descriptor_matches_manifest(cnn):
    """Read `kiln_model` out of the JIT'd module with the C layout of kiln_model.h."""
    compiled = driver.compile(cnn)
    jit = JitModel(compiled)
    desc = ModelDesc.from_address(jit.engine.get_global_value_address("kiln_model"))
    m = compiled.manifest
    assert desc.abi_version == 1 and desc.model_name == b"mnist"
    assert desc.n_inputs == 1 and desc.inputs[0].name == b"input" and desc.inputs[0].rank == 4
    assert list(desc.inputs[0].shape)[:4] == [1, 1, 28, 28] and desc.inputs[0].dtype == 1
    assert desc.n_outputs == 1 and desc.outputs[0].name == b"logits"
    assert desc.n_weights == len(m["weights"]["tensors"])
    for i, t in enumerate(m["weights"]["tensors"]):
        w = desc.weights[i]
        assert (w.name.decode(), w.offset, w.nbytes) == (t["name"], t["offset"], t["nbytes"])
        assert bytes(w.sha256).hex() == t["sha256"]
    assert desc.weights_data_bytes == m["weights"]["data_bytes"]
    assert desc.scratch_bytes == m["scratch_bytes"]
    assert [desc.variants[i].name for i in range(desc.n_variants)] == [b"x86-64-v4", b"x86-64-v3",
                                                                       b"x86-64-v2"]
    assert [desc.variants[i].required_features for i in range(3)] == [15, 7, 1]
    entries = [jit.engine.get_function_address(v["entry"]) for v in m["variants"]]
    assert [desc.variants[i].entry for i in range(3)] == entries


def test_inspect(cnn):
    text = inspect_model(cnn)
    assert "Conv[NHWC 5x5]+Add+Relu" in text and "MatMul+Add" in text and "FLOPs" in text
    r = _cli("inspect", str(cnn), "--passes")
    assert r.returncode == 0 and "== after fuse" in r.stdout and "== after infer" in r.stdout


def test_jit_rejects_wrong_input_shape(cnn):
    jit = JitModel(driver.compile(cnn))
    with pytest.raises(ValueError):
        jit.run(np.zeros((1, 28, 28), np.float32))


def test_an_empty_weight_is_written_and_recorded(tmp_path):
    """A kernel-size-one causal conv leaves a [C, 0] state weight: memoryview cannot cast a shape with 0."""
    from kiln.compiler.artifacts import safetensors_bytes, weight_records
    from kiln.compiler.ir.weights import WeightTable
    table = WeightTable()
    table.add("empty", np.zeros((3, 0), np.float32))
    table.add("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    data, _ = safetensors_bytes(table)
    (tmp_path / "w.safetensors").write_bytes(data)
    loaded = load_file(str(tmp_path / "w.safetensors"))
    assert loaded["empty"].shape == (3, 0) and loaded["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert weight_records(table)[0]["sha256"] == hashlib.sha256(b"").hexdigest()
