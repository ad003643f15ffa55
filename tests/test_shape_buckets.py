"""Shape buckets: model(batch_sizes = [...]) compiles one static variant per leading batch dim into one
launcher and one weights file; a run takes the smallest bucket its inputs fit, zero-padding the batch."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.compiler.errors import CompileError
from kiln.compiler.buckets import check_sizes
from kiln.compiler.driver import compile
from onnx_models import run_onnxruntime


def dense(batch: str | int = "N") -> onnx.ModelProto:
    """y = softmax(relu(x @ W + expand(B, shape(x @ W))) @ V): a batch-led model whose rows are
    independent, with a constant folded at the batch's shape (Bx)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
               for n, s in (("W", (8, 16)), ("B", (16,)), ("V", (16, 4)))]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Shape", ["h"], ["s"]),
             helper.make_node("Expand", ["B", "s"], ["Bx"]), helper.make_node("Add", ["h", "Bx"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "V"], ["z"]),
             helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _package(workspace, model: onnx.ModelProto, attrs: str) -> None:
    (workspace.root / "p").mkdir(exist_ok=True)
    onnx.save(model, workspace.root / "p" / "dense.onnx")
    workspace.write("p/BUILD.kiln", f'\nmodel(name = "dense", graph = "dense.onnx", {attrs})\n')


def _built(tmp_path_factory, kiln_cache, attrs: str):
    """A workspace with dense() built as //p:dense with model() `attrs`."""
    from conftest import Workspace
    workspace = Workspace.empty(tmp_path_factory.mktemp("buckets") / "ws", kiln_cache)
    _package(workspace, dense(), attrs)
    workspace.kiln("build", "//p:dense", check=True)
    return workspace


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory, kiln_cache):
    return _built(tmp_path_factory, kiln_cache, "batch_sizes = [4, 1]")


def _run(workspace, x: np.ndarray, tmp_path) -> subprocess.CompletedProcess:
    np.save(tmp_path / "x.npy", x)
    return subprocess.run([str(workspace.out("p/dense")), "--input", f"x={tmp_path / 'x.npy'}",
                           "--output", f"y={tmp_path / 'y.npy'}", "--weights",
                           str(workspace.out("p/dense.cpu/weights.safetensors"))],
                          capture_output=True, text=True)


@pytest.mark.parametrize("rows,bucket", [(1, 1), (3, 4), (4, 4)])
def test_the_smallest_bucket_that_fits_runs_like_onnxruntime(bucketed, tmp_path, rows, bucket):
    x = np.random.default_rng(rows).standard_normal((rows, 8)).astype(np.float32)
    done = _run(bucketed, x, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"shape bucket batch {bucket}" in done.stderr
    assert ("zero-padded" in done.stderr) == (rows != bucket)
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (rows, 4)
    np.testing.assert_allclose(y, run_onnxruntime(dense(), {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_a_batch_no_bucket_takes_is_one_line(bucketed, tmp_path):
    done = _run(bucketed, np.zeros((5, 8), np.float32), tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert "input 'x' has shape [5, 8]; the model is compiled for [1, 8], [4, 8]" in lines[-1]


def test_another_inner_dim_is_one_line(bucketed, tmp_path):
    done = _run(bucketed, np.zeros((2, 7), np.float32), tmp_path)
    assert done.returncode != 0
    assert "input 'x' has shape [2, 7]; the model is compiled for [1, 8], [4, 8]" in done.stderr


def test_serve_batches_into_the_smallest_bucket_holding_max_batch(bucketed):
    import requests
    import serve_harness
    weights = bucketed.out("p/dense.cpu/weights.safetensors")
    running = serve_harness.start(bucketed.out("p/dense"), "--max-batch", "3", weights=weights)
    x = np.random.default_rng(7).standard_normal((2, 8)).astype(np.float32)
    reply = requests.post(f"{running.url}/v2/models/dense/infer", timeout=10, json={"inputs": [
        {"name": "x", "shape": [2, 8], "datatype": "FP32", "data": x.ravel().tolist()}]})
    code, stderr = running.stop()
    assert reply.status_code == 200, reply.text
    out = reply.json()["outputs"][0]
    assert out["shape"] == [2, 4] and code == 0 and "shape bucket batch 4" in stderr
    np.testing.assert_allclose(np.array(out["data"], np.float32).reshape(2, 4),
                               run_onnxruntime(dense(), {"x": x})[0], rtol=1e-5, atol=1e-6)
    done = subprocess.run([str(bucketed.out("p/dense")), "serve", "--port", str(serve_harness.free_port()),
                           "--max-batch", "5"], env={"KILN_WEIGHTS": str(weights)}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "--max-batch 5 exceeds the batch of 4" in done.stderr


def test_info_lists_the_buckets(bucketed):
    done = subprocess.run([str(bucketed.out("p/dense")), "--info", "--weights",
                           str(bucketed.out("p/dense.cpu/weights.safetensors"))], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "buckets:   batch 1, batch 4 (a smaller batch runs zero-padded" in done.stdout


def test_inspect_shows_every_bucket(tmp_path):
    onnx.save(dense(), tmp_path / "dense.onnx")
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules", "inspect", str(tmp_path / "dense.onnx"),
                           "--batch-sizes", "4,1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "== shape bucket 1 of 2: batch 1" in done.stdout and "inputs: x: f32[4,8]" in done.stdout


def test_buckets_share_one_weights_file_and_the_manifest_lists_them(bucketed):
    manifest = json.loads(bucketed.out("p/dense.cpu/manifest.json").read_text())
    assert manifest["batch"] == 1 and manifest["inputs"][0]["shape"] == [1, 8]
    assert [(b["batch"], b["inputs"][0]["shape"], b["outputs"][0]["shape"]) for b in manifest["buckets"]] == \
        [(1, [1, 8], [1, 4]), (4, [4, 8], [4, 4])]
    names = [t["name"] for t in manifest["weights"]["tensors"]]
    assert len(names) == len(set(names)) and names.count("W.packed") == 1


def test_a_constant_folded_per_batch_is_stored_per_bucket_and_the_rest_once(tmp_path):
    onnx.save(dense(), tmp_path / "dense.onnx")
    compiled = compile(tmp_path / "dense.onnx", batch_sizes=[3, 2])
    tensors = {t["name"]: t["shape"] for t in compiled.manifest["weights"]["tensors"]}
    assert tensors["Bx"] == [2, 16] and tensors["Bx@1"] == [3, 16]
    assert sorted(tensors) == ["Bx", "Bx@1", "V.packed", "W.packed"]
    assert [b["batch"] for b in compiled.manifest["buckets"]] == [2, 3]


@pytest.mark.parametrize("attrs,message", [
    ("batch_sizes = []", "batch_sizes []: needs at least one batch size"),
    ("batch_sizes = [1, 0]", "batch_sizes [1, 0]: 0 is not a positive int"),
    ("batch_sizes = [2, 4, 2]", "batch_sizes [2, 4, 2]: 2 is given twice"),
    ("batch_sizes = [1, 4], batch = 4", "give batch or batch_sizes, not both"),
    ('batch_sizes = [1, "4"]', "batch_sizes must be a list of ints, got an item '4'"),
])
def test_invalid_batch_sizes_are_one_line_at_the_build_file(workspace, attrs, message):
    _package(workspace, dense(), attrs)
    done = workspace.kiln("build", "//p:dense")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = next(line for line in done.stderr.splitlines() if message in line)
    assert "p/BUILD.kiln:2:1" in line


def test_a_batch_fixed_by_the_model_fails_its_compile_at_the_build_file(workspace):
    """Found when the compile reads the model: the failed action's line names the target's BUILD line, and
    the compiler's reason is one line."""
    _package(workspace, dense(batch=1), "batch_sizes = [1, 4]")
    done = workspace.kiln("build", "//p:dense")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "ERROR: //p:dense (p/BUILD.kiln:2:1): Compiling //p:dense" in done.stderr
    assert ("error: batch_sizes: input x of dense.onnx has shape [1, 8] at batch 4: its leading dim is fixed"
            in done.stderr)


def test_a_multi_platform_build_gives_every_platform_the_same_buckets(workspace):
    _package(workspace, dense(), "batch_sizes = [4, 1]")
    done = workspace.kiln("build", "//p:dense", "--platform=cpu,cuda:sm_80,linux-amd64")
    assert done.returncode == 0, done.stderr
    config = "linux-amd64-cpu-cuda_sm_80"
    for platform in ("cpu", "cuda"):
        manifest = json.loads(workspace.out(f"p/dense.{platform}/manifest.json", config).read_text())
        assert [(b["batch"], b["inputs"][0]["shape"]) for b in manifest["buckets"]] == [(1, [1, 8]), (4, [4, 8])]
    assert workspace.out("p/dense.cuda/b4.sm_80.cubin", config).exists()


def test_check_sizes_sorts_the_sizes():
    assert check_sizes([8, 1]) == (1, 8)
    with pytest.raises(CompileError, match=r"batch_sizes \[2, 2\]: 2 is given twice"):
        check_sizes([2, 2])


def _triton_infer(port: int, x: np.ndarray) -> np.ndarray:
    import tritonclient.http as httpclient
    tensor = httpclient.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    return httpclient.InferenceServerClient(f"127.0.0.1:{port}").infer("dense", [tensor]).as_numpy("y")


def _bucket_runs(url: str) -> dict[str, float]:
    import requests
    from prometheus_client.parser import text_string_to_metric_families
    families = {f.name: f for f in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text)}
    return {s.labels["batch"]: s.value for s in families["kiln_bucket_runs"].samples}


def _lone_requests(running, rng) -> int:
    """8 batch-1 requests from 8 threads at once, each answered as onnxruntime does; how many model runs
    answered them."""
    lone = [rng.standard_normal((1, 8)).astype(np.float32) for _ in range(8)]
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, _triton_infer(running.port, lone[i])))
               for i in range(len(lone))]
    before = sum(_bucket_runs(running.url).values())
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(lone):
        np.testing.assert_allclose(results[i], run_onnxruntime(dense(), {"x": x})[0], rtol=1e-5, atol=1e-6)
    return int(sum(_bucket_runs(running.url).values()) - before)


def _gathered_behind_a_slow_body(running, rng) -> dict[str, float]:
    """A request whose body is still arriving holds the next batch (up to --batch-timeout-us): a whole
    request sent meanwhile waits for it and both run together. Both answered as onnxruntime does; the
    bucket runs this took."""
    import http.client
    slow, fast = (rng.standard_normal((1, 8)).astype(np.float32) for _ in range(2))
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32",
                                   "data": slow.ravel().tolist()}]}).encode()
    before = _bucket_runs(running.url)
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
    conn.putrequest("POST", "/v2/models/dense/infer")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body[:10])
    time.sleep(0.5)
    answer: dict[str, np.ndarray] = {}
    thread = threading.Thread(target=lambda: answer.__setitem__("fast", _triton_infer(running.port, fast)))
    thread.start()
    time.sleep(0.5)
    conn.send(body[10:])
    reply = conn.getresponse()
    assert reply.status == 200
    y = json.loads(reply.read())["outputs"][0]
    np.testing.assert_allclose(np.array(y["data"], np.float32).reshape(y["shape"]),
                               run_onnxruntime(dense(), {"x": slow})[0], rtol=1e-5, atol=1e-6)
    thread.join()
    np.testing.assert_allclose(answer["fast"], run_onnxruntime(dense(), {"x": fast})[0], rtol=1e-5, atol=1e-6)
    after = _bucket_runs(running.url)
    return {k: after[k] - before[k] for k in after}


@pytest.mark.e2e
@pytest.mark.parametrize("flags", [(), ("--max-batch", "4", "--batch-timeout-us", "5000000")],
                         ids=["unbatched", "batched"])
def test_serve_runs_each_request_in_the_smallest_bucket_holding_it(bucketed, flags):
    """[1, 4] buckets in one lane (rows are not split): a batch-1 request runs in bucket 1, a batch-3
    one padded in bucket 4 (as onnxruntime at batch 3); batch-1 requests run alone without batching,
    and gathered into bucket 4 behind one whose body is still arriving with it; batch 5 is one 400."""
    import requests
    import serve_harness
    import tritonclient.http as httpclient
    running = serve_harness.start(bucketed.out("p/dense"), "--lanes", "1", *flags,
                                  weights=bucketed.out("p/dense.cpu/weights.safetensors"))
    rng = np.random.default_rng(3)
    try:
        for rows, bucket in ((1, "1"), (3, "4")):
            before = _bucket_runs(running.url)
            x = rng.standard_normal((rows, 8)).astype(np.float32)
            np.testing.assert_allclose(_triton_infer(running.port, x), run_onnxruntime(dense(), {"x": x})[0],
                                       rtol=1e-5, atol=1e-6)
            after = _bucket_runs(running.url)
            assert after[bucket] == before[bucket] + 1 and sum(after.values()) == sum(before.values()) + 1
        if flags:
            assert _gathered_behind_a_slow_body(running, rng) == {"1": 0, "4": 1}
        else:
            assert _lone_requests(running, rng) == 8
        meta = httpclient.InferenceServerClient(f"127.0.0.1:{running.port}").get_model_metadata("dense")
        assert meta["inputs"][0]["shape"] == [-1, 8] and meta["outputs"][0]["shape"] == [-1, 4]
        five = requests.post(f"{running.url}/v2/models/dense/infer", timeout=10, json={"inputs": [
            {"name": "x", "shape": [5, 8], "datatype": "FP32", "data": [0.0] * 40}]})
        assert five.status_code == 400
        assert five.json() == {"error": "input 'x': shape [5, 8]; the model is compiled for [1, 8], [4, 8] "
                                        "and takes 1 to 4 rows, the same on every input"}
    finally:
        code, stderr = running.stop()
    assert code == 0, stderr


@pytest.fixture(scope="module")
def three_buckets(tmp_path_factory, kiln_cache):
    return _built(tmp_path_factory, kiln_cache, "batch_sizes = [1, 2, 4]")


def _split_runs(url: str) -> float:
    import requests
    from prometheus_client.parser import text_string_to_metric_families
    families = {f.name: f for f in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text)}
    return families["kiln_split_runs"].samples[0].value


def _runs_of(running, rows: int, rng) -> tuple[dict[str, float], float]:
    """One request of `rows` rows, answered as onnxruntime does: the bucket runs and split runs it took."""
    x = rng.standard_normal((rows, 8)).astype(np.float32)
    before, split_before = _bucket_runs(running.url), _split_runs(running.url)
    np.testing.assert_allclose(_triton_infer(running.port, x), run_onnxruntime(dense(), {"x": x})[0],
                               rtol=1e-5, atol=1e-6)
    after = _bucket_runs(running.url)
    return {k: after[k] - before[k] for k in after}, _split_runs(running.url) - split_before


@pytest.mark.e2e
@pytest.mark.parametrize("flags", [(), ("--max-batch", "4")], ids=["unbatched", "batched"])
def test_serve_splits_rows_across_two_lanes_in_smaller_buckets(three_buckets, flags):
    """[1, 2, 4] buckets on two threads: a 4-row run is two lanes side by side, each running its two
    rows as one-row slices (bucket 2's arena does not fit twice in bucket 4's), a 3-row one two and one
    such slices; each slice writes its own rows of the answer; one row runs whole."""
    import serve_harness
    running = serve_harness.start(three_buckets.out("p/dense"), "--threads", "2", *flags,
                                  weights=three_buckets.out("p/dense.cpu/weights.safetensors"))
    rng = np.random.default_rng(4)
    try:
        assert _runs_of(running, 4, rng) == ({"1": 4, "2": 0, "4": 0}, 1)
        assert _runs_of(running, 3, rng) == ({"1": 3, "2": 0, "4": 0}, 1)
        assert _runs_of(running, 1, rng) == ({"1": 1, "2": 0, "4": 0}, 0)
    finally:
        code, stderr = running.stop()
    assert code == 0, stderr


@pytest.mark.e2e
def test_one_lane_runs_the_rows_whole(three_buckets):
    import serve_harness
    running = serve_harness.start(three_buckets.out("p/dense"), "--threads", "2", "--lanes", "1",
                                  weights=three_buckets.out("p/dense.cpu/weights.safetensors"))
    try:
        assert _runs_of(running, 4, np.random.default_rng(5)) == ({"1": 0, "2": 0, "4": 1}, 0)
    finally:
        code, stderr = running.stop()
    assert code == 0, stderr


@pytest.mark.e2e
def test_bucketed_server_under_sanitizers_frees_every_session(bucketed, tmp_path):
    """The [1, 4] model linked with ASan, LSan and UBSan, on two threads: sessions for both buckets,
    requests of 1, 3 and 4 rows (the last two split across two lanes in one-row slices), then SIGTERM:
    exit 0 and no report (the shared weights, pools and arena are released once)."""
    import os
    import serve_harness
    from kiln.compiler import launcher
    from tool_skips import require_tool
    sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "launcher"))
    import launcher_testkit as kit
    require_tool("gcc's ASan runtime (zig ships only UBSan's)", launcher.asan_runtime() is not None)
    exe = tmp_path / "dense"
    argv = launcher.link_argv(kit.zig_path(), "linux-amd64",
                              [os.fspath(bucketed.out("p/dense.cpu/model.o"))], os.fspath(exe), sanitize=True)
    subprocess.run(argv, check=True, capture_output=True, cwd=tmp_path)
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    running = serve_harness.start(exe, "--threads", "2", "--max-batch", "4",
                                  weights=bucketed.out("p/dense.cpu/weights.safetensors"), env=env)
    try:
        for rows in (1, 3, 4):
            x = np.ones((rows, 8), np.float32)
            np.testing.assert_allclose(_triton_infer(running.port, x), run_onnxruntime(dense(), {"x": x})[0],
                                       rtol=1e-5, atol=1e-6)
        assert _bucket_runs(running.url) == {"1": 8, "4": 0}  # warm-up runs are not counted
    finally:
        code, stderr = running.stop()
    assert code == 0, stderr
    for report in ("AddressSanitizer", "LeakSanitizer", "runtime error"):
        assert report not in stderr, stderr
