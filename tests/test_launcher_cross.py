"""Reproducible links, and the linux-arm64 launcher run under qemu-user with Debian's arm64 glibc."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from tool_skips import needs_tool

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "launcher"))
import launcher_testkit as kit  # noqa: E402

pytestmark = pytest.mark.e2e

ARM64_LOADER = Path("/lib/ld-linux-aarch64.so.1")
QEMU = shutil.which("qemu-aarch64")
needs_qemu = needs_tool("qemu-aarch64 and Debian's arm64 glibc (dpkg --add-architecture arm64; apt-get install "
                        "qemu-user libc6:arm64)", QEMU is not None and ARM64_LOADER.exists())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("host", ["linux-amd64", "linux-arm64"])
def test_linking_twice_from_different_directories_is_byte_identical(tmp_path, host):
    source = kit.descriptor_c("tiny", "dense_model_entry", [kit.Tensor("x", (1, 4))], [kit.Tensor("logits", (1, 3))],
                              [], 0, 0, kit.variants_for(host))
    first_cwd, second_cwd = tmp_path / "a", tmp_path / "b" / "deeper"
    first_cwd.mkdir()
    second_cwd.mkdir(parents=True)
    first = kit.link(tmp_path / "one", "tiny", source, kit.HERE / "dense_model.c", host, False, cwd=first_cwd)
    second = kit.link(tmp_path / "two", "tiny", source, kit.HERE / "dense_model.c", host, False, cwd=second_cwd)
    assert sha256(first) == sha256(second)
    assert b"/tmp/" not in first.read_bytes()


def test_a_fresh_zig_cache_filled_elsewhere_gives_the_same_bytes(tmp_path):
    """zig builds its libc start files into its cache on first use; nothing of where that
    happened may reach the executable."""
    source = kit.descriptor_c("tiny", "dense_model_entry", [kit.Tensor("x", (1, 4))], [kit.Tensor("logits", (1, 3))],
                              [], 0, 0, kit.X86_VARIANTS)
    elsewhere = tmp_path / "some" / "other" / "place"
    elsewhere.mkdir(parents=True)
    usual = kit.link(tmp_path / "usual", "tiny", source, kit.HERE / "dense_model.c", "linux-amd64", False)
    fresh = kit.link(tmp_path / "fresh", "tiny", source, kit.HERE / "dense_model.c", "linux-amd64", False,
                     cwd=elsewhere, zig_cache=tmp_path / "zig-cache")
    assert sha256(usual) == sha256(fresh)


@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    d = tmp_path_factory.mktemp("arm64")
    return kit.build_dense_model(d / "dense", host="linux-arm64"), kit.build_probe_model(d / "probe", host="linux-arm64")


def qemu_run(exe: Path, *args: str, **kwargs):
    return kit.run(exe, *args, runner=[QEMU, "-L", "/"], **kwargs)


@needs_qemu
def test_arm64_info_picks_the_baseline_variant(arm64):
    done = qemu_run(arm64[0].exe, "--info")
    assert done.returncode == 0, done.stderr
    assert "variant:   aarch64 (requires baseline; model has aarch64)" in done.stdout
    assert "asimd" in done.stdout


@needs_qemu
def test_arm64_round_trip_matches_numpy(arm64, tmp_path):
    model = arm64[0]
    x = np.random.default_rng(7).random((1, 1, 28, 28), dtype=np.float32)
    out = tmp_path / "y.npy"
    done = qemu_run(model.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", x)), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("cpu variant aarch64 (baseline)")
    np.testing.assert_allclose(np.load(out), model.reference(x), rtol=1e-4, atol=1e-4)


@needs_qemu
def test_arm64_reads_gzipped_idx(arm64, tmp_path):
    model = arm64[0]
    images = np.random.default_rng(8).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([model.reference(im / np.float32(255)).argmax() for im in images])
    done = qemu_run(model.exe, "--idx", str(kit.write_idx_images(tmp_path / "i.gz", images, compress=True)),
                    "--labels", str(kit.write_idx_labels(tmp_path / "l.gz", labels, compress=True)))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "accuracy: 1.0000 (5/5)\n"


@needs_qemu
def test_arm64_parallel_for(arm64, tmp_path):
    args: list[str] = []
    for name, value in (("n", 1000), ("repeat", 300), ("nested", 0)):
        args += ["--input", f"{name}={kit.save_npy(tmp_path / f'{name}.npy', np.array([value], np.float32))}"]
    out = tmp_path / "visits.npy"
    done = qemu_run(arm64[1], *args, "--threads", "3", "--output", str(out))
    assert done.returncode == 0, done.stderr
    visits = np.load(out).reshape(-1)
    assert (visits[:1000] == 300).all() and (visits[1000:] == 0).all()


@needs_qemu
def test_arm64_bad_weights_fail_in_one_line(arm64, tmp_path):
    model = arm64[0]
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(model.weights_file.read_bytes()[:-1])
    done = qemu_run(model.exe, "--info", "--weights", str(cut))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"kiln: {cut}: tensor 'fc.bias' is truncated: data section has 31399 bytes, "
                                        "the tensor ends at 31400"]


@needs_qemu
def test_arm64_serves_the_v2_protocol(arm64):
    """civetweb cross-compiled by zig: the arm64 launcher answers inference over HTTP under qemu."""
    import requests
    import serve_harness
    model = arm64[0]
    x = np.random.default_rng(9).random((1, 1, 28, 28), dtype=np.float32)
    server = serve_harness.start(model.exe, weights=model.weights_file, runner=[QEMU, "-L", "/"], ready_within=120)
    try:
        reply = requests.post(f"{server.url}/v2/models/tiny/infer", timeout=60, json={"inputs": [
            {"name": "x", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": x.ravel().tolist()}]})
        assert reply.status_code == 200, reply.text
        logits = np.array(reply.json()["outputs"][0]["data"], np.float32).reshape(1, 10)
        np.testing.assert_allclose(logits, model.reference(x), rtol=1e-4, atol=1e-4)
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
