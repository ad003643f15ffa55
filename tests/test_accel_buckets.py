"""Shape buckets (model(batch_sizes)) on the accelerator platforms, without GPU hardware: every bucket's
cubins pass ptxas per SM and its code objects link with their kernel descriptors, each bucket's GPU
kernels lowered to CPU loops over the one shared weights file match onnxruntime, cpu-xla runs the
launcher's bucket choice end to end on XLA's PJRT CPU plugin, and the launcher's cuda session loads the
chosen bucket's code (seen through a stand-in libcuda that rejects every module)."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile

import numpy as np
import onnx
import pytest
from elftools.elf.elffile import ELFFile

import pjrt_harness
from kiln.compiler import driver, launcher
from kiln.compiler.artifacts import safetensors_bytes
from kiln.compiler.backend.gpu import codeobject
from kiln.compiler.backend.gpu.codegen import build_kernels
from kiln.compiler.backend.gpu.emulate import EmulatedDevice
from kiln.compiler.frontend.onnx import load_onnx
from kiln.compiler.ir.weights import WeightTable
from kiln.compiler.passes.pipeline import run_pipeline
from kiln.compiler.platforms import resolve
from kiln.toolchain.zig import zig_path
from onnx_models import run_onnxruntime
from test_gpu_detect import _stub_gpu
from test_shape_buckets import dense

SIZES = [4, 1]


def _compile(tmp_path, platform: str):
    onnx.save(dense(), tmp_path / "dense.onnx")
    compiled = driver.compile(tmp_path / "dense.onnx", platform, batch_sizes=SIZES, name="dense")
    compiled.write(tmp_path / "out")
    return json.loads((tmp_path / "out" / "manifest.json").read_text())


@pytest.mark.parametrize("platform", ["cuda:sm_80", "rocm:gfx942", "tpu", "cpu-xla"])
def test_every_bucket_has_its_code_over_one_weights_file(tmp_path, platform):
    manifest = _compile(tmp_path, platform)
    spec, archs = resolve(platform)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(spec.files(archs, (1, 4)))
    assert [b["batch"] for b in manifest["buckets"]] == [1, 4]
    names = [t["name"] for t in manifest["weights"]["tensors"]]
    assert len(names) == len(set(names)) and sorted(names) == ["Bx", "Bx@1", "V", "W"]
    first, second = manifest["buckets"]
    assert manifest["inputs"] == first["inputs"] and second["inputs"][0]["shape"] == [4, 8]
    if "program" in manifest:   # StableHLO: the weights are each program's arguments, stored once
        assert (manifest["program"]["file"], second["program"]["file"]) == ("model.mlir", "b4.model.mlir")
        assert {a["name"] for b in manifest["buckets"] for a in b["arguments"] if a["kind"] == "weight"} \
            == set(names)
        assert "tensor<4x8xf32>" in (tmp_path / "out" / "b4.model.mlir").read_text()
    else:
        arch = archs[0]
        assert (manifest["code"][arch]["file"], second["code"][arch]["file"]) == \
            (first["code"][arch]["file"], f"b4.{first['code'][arch]['file']}")


def test_every_bucket_passes_ptxas_for_each_sm(tmp_path):
    """The compile assembles each bucket's PTX for every SM (a failure is a CompileError); each cubin is
    there and the lowest SM's PTX of each bucket ships for the driver's JIT."""
    manifest = _compile(tmp_path, "cuda:sm_75,sm_80,sm_90")
    for bucket in manifest["buckets"]:
        for sm in ("sm_75", "sm_80", "sm_90"):
            cubin = (tmp_path / "out" / bucket["code"][sm]["file"]).read_bytes()
            assert cubin[:4] == b"\x7fELF", (bucket["batch"], sm)
            assert all(k["targets"][sm]["spill_store_bytes"] == 0 for k in bucket["kernels"])
        ptx = (tmp_path / "out" / bucket["ptx"]["file"]).read_text()
        assert ".target sm_75" in ptx and all(f".entry {k['name']}" in ptx for k in bucket["kernels"])
    assert manifest["buckets"][1]["ptx"] == {"file": "b4.sm_75.ptx", "sm": "sm_75"}


def test_every_bucket_links_a_code_object_with_its_kernel_descriptors(tmp_path):
    manifest = _compile(tmp_path, "rocm:gfx90a,gfx942")
    for bucket in manifest["buckets"]:
        names = [k["name"] for k in bucket["kernels"]]
        for arch in ("gfx90a", "gfx942"):
            data = (tmp_path / "out" / bucket["code"][arch]["file"]).read_bytes()
            symbols = {s.name for s in ELFFile(io.BytesIO(data)).get_section_by_name(".dynsym").iter_symbols()}
            assert {f"{n}.kd" for n in names} <= symbols
            codeobject.check(data, arch, names)


def test_every_buckets_gpu_kernels_match_onnxruntime_over_the_shared_weights(tmp_path):
    """As the bucketed compile builds them: one weights table for all buckets, each bucket's kernels read
    it at their own offsets; a smaller batch runs zero-padded and its rows are cut back."""
    onnx.save(dense(), tmp_path / "dense.onnx")
    table, built = WeightTable(), []
    for batch in sorted(SIZES):
        graph = run_pipeline(load_onnx(tmp_path / "dense.onnx", None, batch))
        built.append((batch, *build_kernels(graph, table)))
    weights, start = safetensors_bytes(table)
    for batch, kernels, plan in built:
        device = EmulatedDevice(kernels, plan, bytes(weights[start:]))
        for rows in range(1, batch + 1):
            x = np.random.default_rng(rows).standard_normal((rows, 8)).astype(np.float32)
            padded = np.zeros((batch, 8), np.float32)
            padded[:rows] = x
            y = device.run([padded], [((batch, 4), np.dtype(np.float32))])[0][:rows]
            np.testing.assert_allclose(y, run_onnxruntime(dense(), {"x": x})[0], rtol=1e-5, atol=1e-6)


def _save(tmp_path, rows: int) -> tuple[np.ndarray, str]:
    x = np.random.default_rng(rows).standard_normal((rows, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return x, f"x={tmp_path / 'x.npy'}"


@pytest.fixture(scope="module")
def xla_bundle(tmp_path_factory):
    """bin/dense (a stand-in CPU model: the PJRT path reads only share/cpu-xla/) and the bucketed program."""
    work = tmp_path_factory.mktemp("xla-buckets")
    exe = pjrt_harness.link_launcher(work)
    onnx.save(dense(), work / "dense.onnx")
    driver.compile(work / "dense.onnx", "cpu-xla", batch_sizes=SIZES, name="dense").write(
        work / "dense" / "share" / "cpu-xla")
    (work / "dense" / "bin").mkdir()
    os.link(exe, work / "dense" / "bin" / "dense")
    return work / "dense" / "bin" / "dense"


@pytest.mark.e2e
@pytest.mark.parametrize("rows,bucket", [(1, 1), (3, 4), (4, 4)])
def test_cpu_xla_runs_the_smallest_bucket_that_fits_like_onnxruntime(xla_bundle, tmp_path, rows, bucket):
    x, given = _save(tmp_path, rows)
    done = pjrt_harness.run(xla_bundle, ["--input", given, "--output", f"y={tmp_path / 'y.npy'}"])
    assert done.returncode == 0, done.stderr
    assert "platform cpu-xla" in done.stderr and f"shape bucket batch {bucket}" in done.stderr
    assert ("zero-padded" in done.stderr) == (rows != bucket)
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (rows, 4)
    np.testing.assert_allclose(y, run_onnxruntime(dense(), {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.e2e
def test_cpu_xla_batch_no_bucket_takes_is_one_line(xla_bundle, tmp_path):
    _, given = _save(tmp_path, 5)
    done = pjrt_harness.run(xla_bundle, ["--input", given])
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "kiln: input 'x' has shape [5, 8]; the model is compiled for [1, 8], [4, 8] (a smaller batch is "
        "zero-padded, other dims must match)"]


@pytest.fixture(scope="module")
def gpu_bundle(tmp_path_factory):
    """bin/dense with the bucketed CPU model linked in, and share/cuda/ compiled with the same buckets."""
    work = tmp_path_factory.mktemp("gpu-buckets")
    onnx.save(dense(), work / "dense.onnx")
    driver.compile(work / "dense.onnx", batch_sizes=SIZES, name="dense").write(work / "cpu")
    root = work / "dense"
    (root / "bin").mkdir(parents=True)
    subprocess.run(launcher.link_argv(zig_path(), "linux-amd64", [os.fspath(work / "cpu" / "model.o")],
                                      os.fspath(root / "bin" / "dense")), check=True, capture_output=True)
    (root / "weights").mkdir()
    shutil.copy(work / "cpu" / "weights.safetensors", root / "weights" / "dense.safetensors")
    driver.compile(work / "dense.onnx", "cuda", batch_sizes=SIZES, name="dense").write(root / "share" / "cuda")
    return root


def _run_cuda(bundle, tmp_path, rows: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_") and k != "LD_LIBRARY_PATH"}
    env.update({**_stub_gpu(tmp_path, 86, 12040), "KILN_PLATFORM": "cuda"})
    _, given = _save(tmp_path, rows)
    return subprocess.run([os.fspath(bundle / "bin" / "dense"), "--input", given], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("rows,prefix", [(1, ""), (3, "b4."), (4, "b4.")])
def test_cuda_session_loads_the_code_of_the_bucket_bucket_select_chose(gpu_bundle, tmp_path, rows, prefix):
    done = _run_cuda(gpu_bundle, tmp_path, rows)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"kiln: cuda: loading {prefix}sm_75.ptx failed: CUDA_ERROR_INVALID_PTX (218): stub: ptxas fatal   : "
        f"stub JIT log ptxas fatal   : second line; {prefix}sm_80.cubin was rejected: "
        "CUDA_ERROR_NO_BINARY_FOR_GPU (209): stub")


def test_cuda_batch_no_bucket_takes_is_one_line(gpu_bundle, tmp_path):
    done = _run_cuda(gpu_bundle, tmp_path, 5)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("kiln: input 'x' has shape [5, 8]; the model is "
                                                            "compiled for [1, 8], [4, 8]")


def test_a_gpu_manifest_without_the_chosen_bucket_is_one_line(gpu_bundle, tmp_path):
    copy = tmp_path / "dense"
    shutil.copytree(gpu_bundle, copy)
    manifest_path = copy / "share" / "cuda" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["buckets"] = manifest["buckets"][:1]
    manifest_path.write_text(json.dumps(manifest))
    done = _run_cuda(copy, tmp_path, 3)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].endswith(
        "share/cuda/manifest.json: no shape bucket of batch 4 (the launcher's cpu model has one; rebuild both "
        "with one kiln)")


@pytest.mark.e2e
def test_a_bucketed_cpu_xla_archive_runs_a_padded_batch_with_its_bundled_plugin(workspace, tmp_path):
    """Through the BUILD rule: every bucket's program is a declared output and lands in the archive."""
    (workspace.root / "p").mkdir()
    onnx.save(dense(), workspace.root / "p" / "dense.onnx")
    workspace.write("p/BUILD.kiln", 'model(name = "dense", graph = "dense.onnx", batch_sizes = [4, 1])\n'
                                    'archive(name = "archive", model = ":dense")\n')
    workspace.kiln("build", "//p:archive", "--platform=cpu-xla,linux-amd64", check=True)
    with tarfile.open(workspace.out("p/dense.tar.gz", "linux-amd64-cpu-cpu-xla")) as tar:
        tar.extractall(tmp_path / "x")
    bundle = tmp_path / "x" / "dense"
    assert {p.name for p in (bundle / "share" / "cpu-xla").glob("*.mlir")} == {"model.mlir", "b4.model.mlir"}
    x, given = _save(tmp_path, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    done = subprocess.run([os.fspath(bundle / "bin" / "dense"), "--platform", "cpu-xla", "--input", given,
                           "--output", f"y={tmp_path / 'y.npy'}"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "shape bucket batch 4 (input batch 3, zero-padded)" in done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), run_onnxruntime(dense(), {"x": x})[0], rtol=1e-5,
                               atol=1e-6)
