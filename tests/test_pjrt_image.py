"""`kiln build //mnist:image --platform=tpu,linux-amd64`: one image holding the tpu platform (the
StableHLO program, its manifest and weights, the trimmed libtpu.so) that runs here on the CPU."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from test_mnist_e2e import EXAMPLES, kiln, predicted_class, reference_classes

pytestmark = pytest.mark.e2e
OUT = "kiln-out/linux-amd64-cpu-tpu/mnist"


@pytest.fixture(scope="module")
def image_root(tmp_path_factory, kiln_cache):
    """The image's weight and app layers unpacked."""
    examples = tmp_path_factory.mktemp("examples-tpu") / "examples"
    shutil.copytree(EXAMPLES, examples, ignore=shutil.ignore_patterns("kiln-out"))
    kiln("build", "//mnist:image", "--platform=tpu,linux-amd64", cache=kiln_cache, cwd=examples)
    layout = examples / OUT / "image"
    blob = lambda digest: layout / "blobs" / digest.replace(":", "/")  # noqa: E731
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    root = tmp_path_factory.mktemp("rootfs")
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]).read_bytes()), mode="r:*") as tar:
            if any(name.startswith("mnist/") for name in tar.getnames()):
                tar.extractall(root)
    report = json.loads((examples / OUT / "mnist.tpu.trim-report.json").read_text())
    return root / "mnist", report


def test_image_ships_the_tpu_platform(image_root):
    bundle, report = image_root
    for path in ("bin/mnist", "lib/tpu/libtpu.so", "share/tpu/model.mlir", "share/tpu/manifest.json",
                 "share/cpu/manifest.json", "weights/mnist.safetensors"):
        assert (bundle / path).is_file(), path
    assert os.access(bundle / "lib" / "tpu" / "libtpu.so", os.X_OK)
    manifest = json.loads((bundle / "share" / "tpu" / "manifest.json").read_text())
    assert manifest["platform"] == "tpu"
    assert manifest["weights"]["file"].startswith("../weights/mnist-")
    assert (bundle / "share" / "tpu" / manifest["weights"]["file"]).is_file()
    assert "libtpu.so" in json.dumps(report)


@pytest.mark.skipif(any(p.startswith("accel") for p in os.listdir("/dev")), reason="this machine has a TPU")
def test_image_runs_here_on_the_cpu(image_root):
    bundle, _ = image_root
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    sample = EXAMPLES / "mnist" / "samples" / "digit_3.npy"
    done = subprocess.run([str(bundle / "bin" / "mnist"), "--input", str(sample)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "platform cpu (tpu: no /dev/accel* or /dev/vfio device)" in done.stderr
    assert predicted_class(done.stdout) == reference_classes()["digit_3.npy"]
