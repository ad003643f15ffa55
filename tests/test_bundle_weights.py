"""packaging.weights: each distinct weight file once per bundle (by content), manifests naming it, a report."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from kiln.build_rules.packaging import weights


def compiled(root: Path, platform: str, tensors: dict[str, np.ndarray]) -> str:
    """A platform's compile output as the model rule hands it over: manifest.json and weights.safetensors."""
    directory = root / platform
    directory.mkdir()
    save_file(tensors, str(directory / "weights.safetensors"))
    listed = [{"name": k, "nbytes": v.nbytes, "sha256": hashlib.sha256(v.tobytes()).hexdigest(), "dtype": "f32",
               "shape": list(v.shape)} for k, v in tensors.items()]
    (directory / "manifest.json").write_text(json.dumps({"platform": platform, "weights": {
        "file": "weights.safetensors", "tensors": listed}}))
    return f"--platform={platform}={directory}/manifest.json,{directory}/weights.safetensors"


def test_equal_bytes_are_one_file_and_every_manifest_names_its_file(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.ones(4, np.float32)
    args = [compiled(tmp_path, "cpu", {"w.packed": w.T.copy(), "b": b}),
            compiled(tmp_path, "cuda", {"w.T": w.T.copy(), "b": b}),
            compiled(tmp_path, "rocm", {"w.T": w.T.copy(), "b": b}),
            compiled(tmp_path, "tpu", {"w": w, "b": b})]
    out = tmp_path / "out"
    assert weights.main(["--name", "m", "--primary", "cpu", *args, "--manifests-out", str(out / "share-tree"),
                         "--weights-out", str(out / "weights-tree")]) == 0
    files = sorted(p.relative_to(out / "weights-tree").as_posix() for p in (out / "weights-tree").rglob("*.*"))
    digest = weights.sha256_file(tmp_path / "cuda" / "weights.safetensors")[:12]
    assert len(files) == 3 and "weights/m.safetensors" in files and f"share/weights/m-{digest}.safetensors" in files
    named = {p: json.loads((out / "share-tree" / "share" / p / "manifest.json").read_text())["weights"]["file"]
             for p in ("cpu", "cuda", "rocm", "tpu")}
    assert named["cpu"] == "../../weights/m.safetensors"
    assert named["cuda"] == named["rocm"] == f"../weights/m-{digest}.safetensors" != named["tpu"]
    assert all(os.path.normpath(f"share/{platform}/{file}") in files for platform, file in named.items())
    report = json.loads((out / "share-tree" / "share" / "weights.json").read_text())
    assert [f["platforms"] for f in report["files"]] == [["cpu"], ["cuda", "rocm"], ["tpu"]]
    cuda = report["files"][1]
    assert cuda["tensor_bytes_no_earlier_file_holds"] == 0 and "under other names" in cuda["why"]
    assert report["files"][2]["tensor_bytes_no_earlier_file_holds"] == w.nbytes and "(w)" in report["files"][2]["why"]
    assert report["bytes"] < report["bytes_one_file_per_platform"]


def test_a_bad_platform_argument_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="expected PLATFORM=MANIFEST,WEIGHTS"):
        weights.main(["--name", "m", "--primary", "cpu", "--platform", "cpu=only-a-manifest",
                      "--manifests-out", str(tmp_path / "a"), "--weights-out", str(tmp_path / "b")])
