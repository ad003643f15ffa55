"""Bytes a push and a pull move after a one-line code change to a model image with 1 GB of weights.

    python bench/push_bytes.py [--side 16384] [--workdir DIR]

Writes a workspace holding one model (y = x @ w, w a side x side f32 matrix: 1 GiB at 16384),
builds `//:image`, pushes it to a `docker-registry` started on loopback and pulls it with skopeo into
an OCI layout; then changes the BUILD file's `batch` (new compiled code, same weights), rebuilds,
pushes and pulls again. Prints each image's layers and, per round, the layer bytes the push uploaded
(kiln's push report) and the blob bytes the pull added to the local layout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from safetensors.numpy import save_file

BUILD = """model(name = "big", graph = "big.onnx", weights = "big.safetensors", batch = {batch})
oci_image(name = "image", model = ":big")
oci_push(name = "push", image = ":image")
"""


def write_workspace(root: Path, side: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MODULE.kiln").write_text("")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", side])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", side])
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[side, side])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "big", [x], [y], initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), root / "big.onnx")
    save_file({"w": np.random.default_rng(0).standard_normal((side, side), dtype=np.float32)},
              str(root / "big.safetensors"))


def kiln(root: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "DOCKER_CONFIG": "/nonexistent"})
    if done.returncode != 0:
        raise SystemExit(f"kiln {' '.join(args)} failed:\n{done.stderr}")
    return done.stderr


def start_registry(directory: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{s.getsockname()[1]}"
    config = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}},
              "http": {"addr": host, "secret": "bench"}, "log": {"level": "error"}}
    (directory / "config.yml").write_text(json.dumps(config))
    process = subprocess.Popen(["docker-registry", "serve", str(directory / "config.yml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1)
            return process, host
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("docker-registry did not start")


def layers(root: Path) -> list[dict]:
    layout = root / "kiln-out" / "linux-amd64-cpu" / "image"
    blob = lambda digest: layout / "blobs" / digest.replace(":", "/")  # noqa: E731
    manifest = json.loads(blob(json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]).read_text())
    return manifest["layers"]


def blobs_bytes(layout: Path) -> int:
    return sum(p.stat().st_size for p in (layout / "blobs").rglob("*") if p.is_file())


def round_trip(root: Path, host: str, pulled: Path, batch: int) -> dict:
    (root / "BUILD").write_text(BUILD.format(batch=batch))
    started = time.monotonic()
    kiln(root, "build", "//:image")
    built = time.monotonic() - started
    sizes = {layer["digest"]: layer["size"] for layer in layers(root)}
    report = kiln(root, "run", "//:push", "--", "--repository", f"{host}/big", "--tag", f"b{batch}")
    uploaded = re.findall(r"^\s*uploaded (sha256:[0-9a-f]{64})", report, flags=re.M)
    before = blobs_bytes(pulled) if pulled.exists() else 0
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{host}/big:b{batch}",
                    f"oci:{pulled}:b{batch}"], check=True)
    return {"batch": batch, "build_s": round(built, 1), "layers": [layer["size"] for layer in layers(root)],
            "pushed_layer_bytes": sum(sizes.get(d, 0) for d in uploaded),
            "push_summary": report.strip().splitlines()[-1], "pulled_bytes": blobs_bytes(pulled) - before}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=16384, help="w is side x side f32 (16384: 1 GiB)")
    parser.add_argument("--workdir", type=Path, help="where to write the workspace (default: a temporary dir)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kiln-push-bytes-"))
    write_workspace(work / "ws", args.side)
    (work / "registry").mkdir(exist_ok=True)
    registry, host = start_registry(work / "registry")
    try:
        for batch in (1, 2):
            print(json.dumps(round_trip(work / "ws", host, work / "pulled", batch)))
    finally:
        registry.kill()
        registry.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
