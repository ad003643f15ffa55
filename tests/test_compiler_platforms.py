"""The platform registry, the Backend each platform names and the one manifest schema they all write."""
from __future__ import annotations

import json

import onnx
import pytest

import onnx_models as M
from kiln.compiler import driver, manifest
from kiln.compiler.inspect import inspect_model
from kiln.compiler.platforms import PLATFORMS


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mlp.onnx"
    onnx.save(M.mlp(), path)
    return path


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_compile_writes_the_registry_files_and_the_common_manifest(tmp_path, mlp, name):
    platform = PLATFORMS[name]
    driver.compile(mlp, name, name="m").write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(platform.files(platform.default_archs))
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest.COMMON <= m.keys()
    assert (m["format"], m["name"], m["platform"], m["batch"]) == ("kiln-model/1", "m", name, 1)
    assert m["weights"]["file"] == "weights.safetensors" and m["source"]["model"] == "mlp.onnx"


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_backend_knows_the_default_archs(name):
    platform = PLATFORMS[name]
    assert set(platform.default_archs) <= set(platform.load_backend().archs)


def test_a_section_never_redefines_a_common_field():
    with pytest.raises(ValueError, match="redefines platform"):
        manifest.combine({"platform": "cpu"}, {"platform": "tpu"})


def test_inspect_shows_the_passes_of_the_platform(mlp):
    text = inspect_model(mlp, every_pass=True, platform="tpu")
    assert [line.split(":")[0] for line in text.splitlines() if line.startswith("==")] == \
        ["== after infer", "== after decompose", "== after dce"]
    assert "== after fuse" in inspect_model(mlp, every_pass=True)
