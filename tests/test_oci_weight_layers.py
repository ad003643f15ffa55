"""Weights ride in their own image layers: after a one-line code change a push re-sends only the small layer.

A 64 MB model (one 4096x4096 f32 MatMul) is built into an image and pushed to a throwaway
`docker-registry`; its BUILD file's `batch` changes (new compiled code, same weights), the image is
rebuilt and pushed again. The second push must skip the weight and base layers and upload under 1 MB.
bench/push_bytes.py measures the same for a 1 GB model.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from safetensors.numpy import save_file

from fixtures.registry.peers import make_registry, require  # noqa: F401  (make_registry: a fixture, used by name)
from kiln.build_rules.oci.layout import Descriptor, Layout

pytestmark = pytest.mark.e2e
SIDE = 4096  # 4096 x 4096 f32: 64 MB of weights
BUILD = """model(name = "big", graph = "big.onnx", weights = "big.safetensors", batch = {batch})
oci_image(name = "image", model = ":big")
oci_push(name = "push", image = ":image")
"""


def write_model(root: Path, side: int) -> None:
    """y = x @ w; w is declared in the graph and stored in big.safetensors."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", side])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", side])
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[side, side])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "big", [x], [y], initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), root / "big.onnx")
    weights = np.random.default_rng(0).standard_normal((side, side), dtype=np.float32)
    save_file({"w": weights}, str(root / "big.safetensors"))


def image_layers(workspace, batch: int) -> tuple[Layout, list[Descriptor]]:
    workspace.write("BUILD", BUILD.format(batch=batch))
    workspace.kiln("build", "//:image", check=True)
    layout = Layout.open(workspace.out("image"))
    manifest = layout.read_json(layout.single_manifest())
    return layout, [Descriptor.from_json(layer) for layer in manifest["layers"]]


def uploaded(push_stderr: str) -> list[str]:
    return re.findall(r"^\s*uploaded (sha256:[0-9a-f]{64})", push_stderr, flags=re.M)


def push(workspace, repository: str) -> str:
    done = workspace.kiln("run", "//:push", "--", "--repository", repository, "--tag", "v1",
                          env={"DOCKER_CONFIG": "/nonexistent"}, check=True)
    return done.stderr


def test_code_change_pushes_only_the_code_layer(workspace, make_registry):
    require("docker-registry")
    write_model(workspace.root, SIDE)
    registry = make_registry()
    repository = f"{registry.host}/big"
    _, first = image_layers(workspace, 1)
    base, *weights, code = first
    assert sum(layer.size for layer in weights) > 50 << 20 > code.size  # gzip saves ~7% on random f32
    first_push = push(workspace, repository)
    assert set(uploaded(first_push)) >= {layer.digest for layer in first}

    _, second = image_layers(workspace, 2)
    assert second[:-1] == first[:-1], "a code change must leave the base and weight layers as they were"
    assert second[-1].digest != code.digest
    again = uploaded(push(workspace, repository))
    sizes = {layer.digest: layer.size for layer in second}
    sent = sum(sizes.get(digest, 0) for digest in again)
    assert second[-1].digest in again and not {layer.digest for layer in second[:-1]} & set(again)
    assert sent < 1 << 20, f"the second push sent {sent} bytes of layers"
