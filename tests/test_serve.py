"""`mnist serve`: the Open Inference Protocol (KServe v2) as Triton speaks it, checked with Triton's own
Python client and KServe's (JSON and binary tensors), with plain HTTP against the KServe v2 REST spec's
examples, and against onnxruntime; Prometheus /metrics read by prometheus-client's parser; SIGTERM
drains."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

import serve_harness
from conftest import REPO

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "launcher"))
import launcher_testkit as kit  # noqa: E402

EXAMPLES = REPO / "examples"
SAMPLES = sorted((EXAMPLES / "mnist" / "samples").glob("digit_*.npy"))
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mnist(tmp_path_factory, kiln_cache) -> tuple[Path, Path]:
    """The mnist launcher and its weights, built by kiln in a copy of the examples workspace."""
    copy = tmp_path_factory.mktemp("examples") / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("kiln-out"))
    return build_model(copy, "mnist", kiln_cache)


def build_model(workspace: Path, name: str, kiln_cache: Path) -> tuple[Path, Path]:
    """`kiln build //mnist:NAME` in `workspace`: the launcher and its weights."""
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules", "build", f"//mnist:{name}"], cwd=workspace,
                          env={**os.environ, "XDG_CACHE_HOME": str(kiln_cache)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = workspace / "kiln-out" / "linux-amd64-cpu" / "mnist"
    return out / name, out / f"{name}.cpu" / "weights.safetensors"


@pytest.fixture(scope="module")
def server(mnist):
    launcher, weights = mnist
    running = serve_harness.start(launcher, "--threads", "2", weights=weights)
    yield running
    code, stderr = running.stop()
    assert code == 0, stderr


def onnxruntime_logits(sample: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(str(EXAMPLES / "mnist" / "mnist.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": sample})[0]


def triton(server):
    import tritonclient.http as httpclient
    return httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infers_like_onnxruntime(server, binary):
    import tritonclient.http as httpclient
    client = triton(server)
    for path in SAMPLES:
        sample = np.load(path).astype(np.float32).reshape(1, 1, 28, 28)
        tensor = httpclient.InferInput("input", [1, 1, 28, 28], "FP32")
        tensor.set_data_from_numpy(sample, binary_data=binary)
        wanted = httpclient.InferRequestedOutput("logits", binary_data=binary)
        result = client.infer("mnist", [tensor], outputs=[wanted], request_id=path.stem)
        logits = result.as_numpy("logits")
        assert logits.shape == (1, 10) and logits.dtype == np.float32
        np.testing.assert_allclose(logits, onnxruntime_logits(sample), rtol=1e-4, atol=1e-4)
        assert result.get_response()["id"] == path.stem


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_client_infers_like_onnxruntime(server, binary):
    """KServe's own v2 REST client (kserve.InferenceRESTClient, asyncio over httpx): health, model
    readiness and inference, each digit against onnxruntime, and a protocol error as its exception."""
    import asyncio
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def talk() -> None:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            assert await client.is_server_live(server.url) and await client.is_server_ready(server.url)
            assert await client.is_model_ready(server.url, "mnist")
            for path in SAMPLES:
                sample = np.load(path).astype(np.float32).reshape(1, 1, 28, 28)
                tensor = InferInput("input", [1, 1, 28, 28], "FP32")
                tensor.set_data_from_numpy(sample, binary_data=binary)
                response = await client.infer(server.url, InferRequest("mnist", [tensor], request_id=path.stem),
                                              model_name="mnist")
                assert response.id == path.stem and response.outputs[0].name == "logits"
                np.testing.assert_allclose(response.outputs[0].as_numpy().reshape(1, 10),
                                           onnxruntime_logits(sample), rtol=1e-4, atol=1e-4)
            wrong = InferInput("image", [1, 1, 28, 28], "FP32", data=[0.0] * 784)
            with pytest.raises(httpx.HTTPStatusError, match="unexpected inference input 'image'") as refused:
                await client.infer(server.url, InferRequest("mnist", [wrong]), model_name="mnist")
            assert refused.value.response.status_code == 400
        finally:
            await client.close()

    asyncio.run(talk())


def test_tritonclient_health_and_metadata(server):
    client = triton(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("mnist")
    assert meta["name"] == "mnist" and meta["platform"] == "kiln_cpu"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [1, 10]}]


def test_tritonclient_sees_protocol_errors(server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException
    client = triton(server)
    tensor = httpclient.InferInput("image", [1, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(InferenceServerException, match="unexpected inference input 'image'"):
        client.infer("mnist", [tensor])
    assert not client.is_model_ready("resnet")


def test_kserve_v2_json_from_the_spec(server):
    """The spec's example request shape: nested data, an id, named outputs, no extensions."""
    sample = np.load(SAMPLES[0]).astype(np.float32).reshape(1, 1, 28, 28)
    body = {"id": "42", "inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                    "data": sample.tolist()}],
            "outputs": [{"name": "logits"}]}
    reply = requests.post(f"{server.url}/v2/models/mnist/infer", json=body, timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
    answer = reply.json()
    assert answer["id"] == "42" and answer["model_name"] == "mnist"
    [output] = answer["outputs"]
    assert output["name"] == "logits" and output["datatype"] == "FP32" and output["shape"] == [1, 10]
    np.testing.assert_allclose(np.array(output["data"], np.float32).reshape(1, 10), onnxruntime_logits(sample),
                               rtol=1e-4, atol=1e-4)
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{server.url}/v2/models/mnist/versions/1/ready", timeout=5).status_code == 200



def test_json_numbers_in_every_spelling(server):
    """Exponents, signs, leading zeros, integers and more digits than a uint64 holds all parse as
    Python's float() does (the fast path and strtod's fallback alike)."""
    sample = np.load(SAMPLES[1]).astype(np.float32).ravel()
    spellings = [repr(float(v)) for v in sample]
    spellings[100:110] = ["1", "0", "-0", "-0.0", "7.5e-1", "75E-2", "0.00075e3", "-2.5E+0", "0.25e1", "1e0"]
    spellings[110:114] = ["0.1234567890123456789012", "12345678901234567890123e-23", "3e-30",
                          "0.000000000000000000000001e24"]
    body = ('{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":[' + ",".join(spellings)
            + "]}]}")
    reply = requests.post(f"{server.url}/v2/models/mnist/infer", data=body, timeout=10)
    assert reply.status_code == 200, reply.text
    values = np.array([float(text) for text in spellings], np.float32).reshape(1, 1, 28, 28)
    np.testing.assert_allclose(np.array(reply.json()["outputs"][0]["data"], np.float32).reshape(1, 10),
                               onnxruntime_logits(values), rtol=1e-5, atol=1e-5)

@pytest.mark.parametrize("change, status, needle", [
    ({"datatype": "INT64"}, 400, "datatype INT64"),
    ({"shape": [1, 784, 2]}, 400, "shape [1, 784, 2]"),
    ({"data": [1.0, 2.0]}, 400, "784 numbers"),
    ({"data": ["x"] * 784}, 400, "784 numbers"),
])
def test_kserve_v2_errors_are_json_with_status(server, change, status, needle):
    tensor = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.0] * 784, **change}
    reply = requests.post(f"{server.url}/v2/models/mnist/infer", json={"inputs": [tensor]}, timeout=10)
    assert reply.status_code == status
    assert needle in reply.json()["error"]


def test_unknown_routes_and_models_are_404(server):
    for path in ("/v2/models/resnet", "/v2/models/resnet/infer", "/nothing"):
        reply = requests.get(server.url + path, timeout=5)
        assert reply.status_code == 404 and "error" in reply.json()
    assert requests.get(f"{server.url}/v2/models/mnist/infer", timeout=5).status_code == 405


def test_metrics_parse_as_prometheus_text(server):
    from prometheus_client.parser import text_string_to_metric_families
    requests.post(f"{server.url}/v2/models/mnist/infer", data=b"{", timeout=5)
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    codes = {s.labels["code"]: s.value for s in families["kiln_requests"].samples}
    assert codes["200"] >= 1 and codes["400"] >= 1
    for name in ("kiln_request_duration_seconds", "kiln_queue_duration_seconds", "kiln_inference_duration_seconds"):
        assert families[name].type == "histogram"
        count = next(s.value for s in families[name].samples if s.name == f"{name}_count")
        inf = next(s.value for s in families[name].samples if s.labels.get("le") == "+Inf")
        assert count == inf and count >= 1
    assert families["kiln_requests_in_flight"].samples[0].value >= 1  # this scrape
    [platform] = families["kiln_platform_info"].samples
    assert platform.labels == {"platform": "cpu"} and platform.value == 1


def lane_runs(server) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {s.labels["lane"]: s.value for s in families["kiln_lane_runs"].samples}


def mnist_post(server, session: requests.Session, sample: np.ndarray) -> np.ndarray:
    reply = session.post(f"{server.url}/v2/models/mnist/infer", timeout=30, data=json.dumps({"inputs": [
        {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": sample.ravel().tolist()}]}))
    assert reply.status_code == 200, reply.text
    return np.array(reply.json()["outputs"][0]["data"], np.float32)


def overlapping_clients(server, clients: int = 8, requests_each: int = 40) -> list[str]:
    """`clients` threads posting the sample digits in turn: the digits whose answer was not their own."""
    samples = [np.load(path).astype(np.float32).reshape(1, 1, 28, 28) for path in SAMPLES]
    expected = [onnxruntime_logits(sample) for sample in samples]
    wrong: list[str] = []

    def client(offset: int) -> None:
        with requests.Session() as session:
            for i in range(requests_each):
                k = (offset + i) % len(samples)
                logits = mnist_post(server, session, samples[k])
                if not np.allclose(logits, expected[k].ravel(), rtol=1e-4, atol=1e-4):
                    wrong.append(SAMPLES[k].stem)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrong


def test_concurrent_requests_run_side_by_side_each_on_one_thread(server):
    """A lone request runs on both threads; requests that overlap run in lanes of one thread each, and
    each gets its own answer."""
    before = lane_runs(server)
    with requests.Session() as session:
        mnist_post(server, session, np.load(SAMPLES[0]).astype(np.float32))
    alone = lane_runs(server)
    assert alone["wide"] == before["wide"] + 1 and alone["narrow"] == before["narrow"]
    assert not overlapping_clients(server, clients=8, requests_each=40)
    after = lane_runs(server)
    assert after["narrow"] > alone["narrow"]
    assert after["wide"] + after["narrow"] == alone["wide"] + alone["narrow"] + 8 * 40


def test_one_lane_runs_every_request_on_every_thread(mnist):
    launcher, weights = mnist
    running = serve_harness.start(launcher, "--threads", "2", "--lanes", "1", weights=weights)
    try:
        assert not overlapping_clients(running, clients=4, requests_each=20)
        assert lane_runs(running) == {"wide": 4 * 20, "narrow": 0}
    finally:
        code, stderr = running.stop()
    assert code == 0, stderr


def test_more_lanes_than_threads_is_refused(mnist):
    launcher, weights = mnist
    done = subprocess.run([launcher, "serve", "--threads", "2", "--lanes", "3",
                           "--port", str(serve_harness.free_port()), "--weights", weights],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "kiln: serve: --lanes 3 exceeds the 2 threads (--threads) the lanes share")


def test_sigterm_finishes_in_flight_requests_and_exits_0(mnist):
    launcher, weights = mnist
    running = serve_harness.start(launcher, "--threads", "1", weights=weights)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                   "data": [0.5] * 784}]})
    statuses: list[int] = []
    started = threading.Barrier(9)

    def client() -> None:
        with requests.Session() as session:
            started.wait()
            for _ in range(20):
                try:
                    statuses.append(session.post(f"{running.url}/v2/models/mnist/infer", data=body,
                                                 timeout=30).status_code)
                except requests.ConnectionError:
                    return  # the server stopped accepting: no half answers
    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    started.wait()
    while len(statuses) < 8 and any(t.is_alive() for t in threads):  # stop in the middle of requests
        time.sleep(0.001)
    code, stderr = running.stop()
    for t in threads:
        t.join()
    assert code == 0, stderr
    assert statuses and set(statuses) == {200}
    assert stderr.splitlines()[-1] == "kiln: serve: stopped"


def test_live_at_once_ready_only_after_the_warm_up(tmp_path):
    """The port answers while the warm-up runs (2 s here): live, but not ready (Triton's 400 and KServe's
    body), and an inference is 503."""
    running = serve_harness.start(kit.build_slow_first_run_model(tmp_path), "--threads", "1", until="live")
    try:
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        for path in ("/v2/health/ready", "/v2/models/slow/ready"):
            reply = requests.get(f"{running.url}{path}", timeout=5)
            assert reply.status_code == 400 and reply.json() == {"ready": False}, path
        early = requests.post(f"{running.url}/v2/models/slow/infer", json=body, timeout=5)
        assert early.status_code == 503 and early.json() == {"error": "model is not ready"}
        deadline = time.monotonic() + 30
        while requests.get(f"{running.url}/v2/health/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.05)
        reply = requests.post(f"{running.url}/v2/models/slow/infer", json=body, timeout=5)
        assert reply.status_code == 200 and reply.json()["outputs"][0]["data"] == [1, 2, 3, 4]
    finally:
        code, stderr = running.stop()
    assert code == 0, stderr


@pytest.fixture(scope="module")
def mnist_batch4(mnist, kiln_cache) -> tuple[Path, Path]:
    """mnist compiled with batch = 4, beside the batch-1 build."""
    workspace = mnist[0].parents[3]
    (workspace / "mnist" / "BUILD.kiln").write_text((workspace / "mnist" / "BUILD.kiln").read_text() + (
        '\nmodel(name = "mnist4", graph = "mnist.onnx", weights = "mnist.safetensors", batch = 4)\n'))
    return build_model(workspace, "mnist4", kiln_cache)


def test_dynamic_batching_gathers_pads_and_splits(mnist_batch4):
    """Single-image requests from 6 clients at once run in batches of up to 4 (padded when fewer
    arrived), and each client gets its own image's logits."""
    import tritonclient.http as httpclient
    launcher, weights = mnist_batch4
    running = serve_harness.start(launcher, "--max-batch", "4", "--batch-timeout-us", "20000", weights=weights)
    samples = [np.load(p).astype(np.float32).reshape(1, 1, 28, 28) for p in SAMPLES[:6]]
    results: dict[int, np.ndarray] = {}

    def client(i: int) -> None:
        tensor = httpclient.InferInput("input", [1, 1, 28, 28], "FP32")
        tensor.set_data_from_numpy(samples[i], binary_data=i % 2 == 0)
        results[i] = httpclient.InferenceServerClient(f"127.0.0.1:{running.port}").infer(
            "mnist4", [tensor]).as_numpy("logits")
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(samples))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, sample in enumerate(samples):
        assert results[i].shape == (1, 10)
        np.testing.assert_allclose(results[i], onnxruntime_logits(sample), rtol=1e-4, atol=1e-4)
    two = np.concatenate(samples[:2])
    reply = requests.post(f"{running.url}/v2/models/mnist4/infer", timeout=10, json={"inputs": [
        {"name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32", "data": two.ravel().tolist()}]})
    assert reply.status_code == 200 and reply.json()["outputs"][0]["shape"] == [2, 10]
    too_many = requests.post(f"{running.url}/v2/models/mnist4/infer", timeout=10, json={"inputs": [
        {"name": "input", "shape": [5, 1, 28, 28], "datatype": "FP32", "data": [0.0] * 5 * 784}]})
    assert too_many.status_code == 400 and "shape [5, 1, 28, 28]" in too_many.json()["error"]
    code, stderr = running.stop()
    assert code == 0, stderr


def test_max_batch_beyond_the_compiled_batch_is_refused(mnist):
    launcher, weights = mnist
    done = subprocess.run([str(launcher), "serve", "--port", str(serve_harness.free_port()), "--max-batch", "8"],
                          env={**os.environ, "KILN_WEIGHTS": str(weights)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "kiln: serve: --max-batch 8 exceeds the batch of 1 that model 'mnist' was compiled with")


def test_uint8_input_and_int8_output_as_kserve_datatypes(tmp_path):
    """A model reading a UINT8 tensor and answering an INT8 one (the KServe v2 datatypes) over JSON."""
    import onnx
    from onnx import TensorProto, helper

    from kiln.compiler import driver, launcher
    from onnx_models import run_onnxruntime
    nodes = [helper.make_node("Cast", ["img"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Sub", ["f", "mid"], ["centred"]),
             helper.make_node("Cast", ["centred"], ["signed"], to=TensorProto.INT8)]
    graph = helper.make_graph(nodes, "bytes", [helper.make_tensor_value_info("img", TensorProto.UINT8, [2, 3])],
                              [helper.make_tensor_value_info("signed", TensorProto.INT8, [2, 3])],
                              [helper.make_tensor("mid", TensorProto.FLOAT, [], [128.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "bytes.onnx")
    driver.compile(tmp_path / "bytes.onnx").write(tmp_path / "out")
    argv = launcher.link_argv("zig", "linux-amd64", [str(tmp_path / "out" / "model.o")], str(tmp_path / "bytes"))
    linked = subprocess.run([sys.executable, "-m", "ziglang", *argv[1:]], capture_output=True, text=True)
    assert linked.returncode == 0, linked.stderr
    img = np.array([[0, 1, 127], [128, 200, 255]], np.uint8)
    running = serve_harness.start(tmp_path / "bytes", weights=tmp_path / "out" / "weights.safetensors")
    try:
        body = {"inputs": [{"name": "img", "shape": [2, 3], "datatype": "UINT8", "data": img.ravel().tolist()}]}
        reply = requests.post(f"{running.url}/v2/models/bytes/infer", json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        [output] = reply.json()["outputs"]
        assert output["datatype"] == "INT8" and output["shape"] == [2, 3]
        np.testing.assert_array_equal(np.array(output["data"], np.int8).reshape(2, 3),
                                      run_onnxruntime(model, {"img": img})[0])
    finally:
        code, stderr = running.stop()
    assert code == 0, stderr


@pytest.mark.parametrize("given, expected", [
    (None, ["glibc.malloc.tcache_count=0"]),
    ("glibc.malloc.arena_max=2", ["glibc.malloc.arena_max=2", "glibc.malloc.tcache_count=0"]),
    ("glibc.malloc.tcache_count=3", ["glibc.malloc.tcache_count=3"]),
])
def test_serve_runs_without_glibcs_per_thread_malloc_caches(mnist, given, expected):
    """serve re-executes itself once with glibc's tcache off (64 HTTP threads' caches pinned 2 MiB of
    heap), keeping the user's other tunables and a tcache setting of their own; same process, same pid.
    (glibc cuts GLIBC_TUNABLES at its colons where it lies: the tunables are read one by one.)"""
    launcher, weights = mnist
    assert "GLIBC_TUNABLES" not in os.environ
    running = serve_harness.start(launcher, "--threads", "1", weights=weights,
                                  env={"GLIBC_TUNABLES": given} if given else None)
    try:
        environment = Path(f"/proc/{running.process.pid}/environ").read_bytes()
        pieces = environment[environment.index(b"GLIBC_TUNABLES="):].split(b"\0")
        assert [t.decode().removeprefix("GLIBC_TUNABLES=") for t in pieces[:len(expected)]] == expected
        assert not pieces[len(expected)].startswith(b"glibc.")
        assert requests.get(f"{running.url}/v2/health/ready", timeout=10).status_code == 200
    finally:
        code, stderr = running.stop()
    assert code == 0, stderr
