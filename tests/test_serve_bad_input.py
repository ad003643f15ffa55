"""`serve` under AddressSanitizer, LeakSanitizer and UBSan: every kind of bad request gets a clean 4xx
or a closed connection, the server keeps answering, and SIGTERM ends it with exit 0 and no report."""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from pathlib import Path

import pytest
import requests
from tool_skips import require_tool

import serve_harness
from kiln.compiler import launcher

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "launcher"))
import launcher_testkit as kit  # noqa: E402

pytestmark = pytest.mark.e2e
TIMEOUT_MS = 400
GOOD = {"inputs": [{"name": "x", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.25] * 784}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_tool("gcc's ASan runtime (zig ships only UBSan's)", launcher.asan_runtime() is not None)
    tiny = kit.build_dense_model(tmp_path_factory.mktemp("tiny"), sanitize=True)
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    running = serve_harness.start(tiny.exe, "--threads", "2", "--max-request-bytes", "65536",
                                  "--timeout-ms", str(TIMEOUT_MS), weights=tiny.weights_file, env=env)
    yield running
    running.stop()


def raw(server, data: bytes, read: bool = True) -> bytes:
    """Sends bytes on a fresh connection and returns everything the server sent before closing."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(data)
        if not read:
            return b""
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def infer(server, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{server.url}/v2/models/tiny/infer", data=body, headers=headers, timeout=10)


def still_serves(server) -> None:
    reply = infer(server, json.dumps(GOOD).encode())
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["outputs"][0]["data"]) == 10


@pytest.mark.parametrize("body, needle", [
    (b"{\"inputs\": [", "malformed request JSON"),
    (b"\xff\xfe\x00garbage", "malformed request JSON"),
    # failing deep inside containers that already hold members: what was read is freed (LSan)
    (b'{"inputs": [{"name": "x", "data": [1, 2, ]}]}', "malformed request JSON"),
    (b'{"id": "1", "parameters": {"a": [1, {"b": true}], "c" 3}}', "malformed request JSON"),
    (b'{"inputs": [[1, 2], [3, nul]]}', "malformed request JSON"),
    (b"[1, 2, 3]", "not an object"),
    (b"{}", "inputs array"),
    (json.dumps({"inputs": [{**GOOD["inputs"][0], "name": "y"}]}).encode(), "unexpected inference input 'y'"),
    (json.dumps({"inputs": [{**GOOD["inputs"][0], "shape": [28, 28, 2]}]}).encode(), "shape [28, 28, 2]"),
    (json.dumps({"inputs": [{**GOOD["inputs"][0], "shape": [-1]}]}).encode(), "non-negative"),
    (json.dumps({"inputs": [{**GOOD["inputs"][0], "datatype": "BYTES"}]}).encode(), "datatype BYTES"),
    (json.dumps({"inputs": [{**GOOD["inputs"][0], "data": [[0.5] * 800]}]}).encode(), "784 numbers"),
    (json.dumps({"inputs": [GOOD["inputs"][0]] * 2}).encode(), "given twice"),
    (json.dumps({**GOOD, "outputs": [{"name": "nope"}]}).encode(), "unexpected inference output 'nope'"),
    (json.dumps({**GOOD, "outputs": {"name": "logits"}}).encode(), "outputs must be an array"),
    (b"[" * 100000, "larger than --max-request-bytes"),
])
def test_bad_json_is_400_with_a_reason(server, body, needle):
    reply = infer(server, body)
    assert reply.status_code in (400, 413)
    assert needle in reply.json()["error"]
    still_serves(server)


def test_bad_binary_tensor_headers(server):
    binary = {"inputs": [{**GOOD["inputs"][0], "parameters": {"binary_data_size": 3136}}]}
    header = json.dumps({"inputs": [{k: v for k, v in binary["inputs"][0].items() if k != "data"}]}).encode()
    for length, payload in (("99999", b""), ("-4", b""), ("twelve", b""), (str(len(header)), b"\0" * 100)):
        reply = infer(server, header + payload, {"Inference-Header-Content-Length": length})
        assert reply.status_code == 400 and reply.json()["error"], length
    ok = infer(server, header + b"\0" * 3136, {"Inference-Header-Content-Length": str(len(header))})
    assert ok.status_code == 200
    still_serves(server)


@pytest.mark.parametrize("version, connection, kept", [
    ("1.1", None, True), ("1.1", "close", False), ("1.1", "foo, Keep-Alive", True),
    ("1.0", None, False), ("1.0", "keep-alive", True), ("1.0", "keep-alive-ish", False),
])
def test_answers_say_whether_the_connection_stays_open(server, version, connection, kept):
    """kiln writes the head itself (one write per answer): its Connection header must match what
    civetweb then does with the connection, and a kept connection answers a second request."""
    head = f"GET /v2/health/ready HTTP/{version}\r\nHost: x\r\n"
    request = (head + (f"Connection: {connection}\r\n" if connection else "") + "\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        for _ in range(2 if kept else 1):
            s.sendall(request)
            answer = s.recv(65536)
            assert answer.startswith(f"HTTP/{version} 200 OK\r\n".encode()), answer
            assert f"Connection: {'keep-alive' if kept else 'close'}\r\n".encode() in answer
            assert answer.endswith(b'\r\n\r\n{"ready":true}') and b"Date: " in answer
        if not kept:
            assert s.recv(65536) == b""


def test_binary_inputs_read_in_place_are_freed_once_on_every_path(server):
    """A binary tensor is read where it lies in the body, which then lives until the run: refusals
    after it (a second copy of the input, a bad outputs member) free the body once, and the tensor's
    bytes reach the model as sent (LeakSanitizer and ASan watch)."""
    tensor = {"name": "x", "shape": [1, 1, 28, 28], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}
    for doc, payload, needle in (({"inputs": [tensor, tensor]}, b"\0" * 6272, "given twice"),
                                 ({"inputs": [tensor], "outputs": {"name": "y"}}, b"\0" * 3136, "must be an array"),
                                 ({"inputs": [tensor], "outputs": [{"name": "y"}]}, b"\0" * 3136, "output 'y'")):
        header = json.dumps(doc).encode()
        reply = infer(server, header + payload, {"Inference-Header-Content-Length": str(len(header))})
        assert reply.status_code == 400 and needle in reply.json()["error"], reply.text
    header = json.dumps({"inputs": [tensor]}).encode()
    quarter = struct.pack("<784f", *[0.25] * 784)
    reply = infer(server, header + quarter, {"Inference-Header-Content-Length": str(len(header))})
    assert reply.json()["outputs"] == requests.post(f"{server.url}/v2/models/tiny/infer", json=GOOD,
                                                    timeout=10).json()["outputs"]
    still_serves(server)


def test_oversized_body_is_413_without_reading_it(server):
    head = (f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {10 ** 12}\r\n\r\n").encode()
    answer = raw(server, head)
    assert answer.startswith(b"HTTP/1.1 413")
    still_serves(server)



def test_headers_up_to_8_kib_are_read_and_longer_ones_are_400(server):
    """Each HTTP thread keeps an 8 KiB buffer for a request's head: headers that fit are answered
    (with the body's first bytes in the same buffer), longer ones refused."""
    body = json.dumps(GOOD).encode()
    reply = infer(server, body, headers={"X-Padding": "p" * 7000})
    assert reply.status_code == 200, reply.text
    head = f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nX-Padding: {'p' * 9000}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head)  # the server answers and closes once its buffer is full: no half-close here
        assert s.recv(4096).startswith(b"HTTP/1.0 400 Bad Request")
    still_serves(server)

def test_slowloris_partial_request_is_closed(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Le")
        started = time.monotonic()
        while s.recv(4096):
            pass
        assert time.monotonic() - started < 5 * TIMEOUT_MS / 1000 + 2
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"in")
        answer = b"".join(iter(lambda: s.recv(4096), b""))
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
    still_serves(server)


def test_client_gone_mid_request_or_response(server):
    request = json.dumps(GOOD).encode()
    head = f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(request)}\r\n\r\n".encode()
    for _ in range(20):
        raw(server, head + request, read=False)            # gone before the answer
        raw(server, head + request[: len(request) // 2], read=False)  # gone mid-body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # reset, not a clean close
        s.sendall((head + request) * 50)
    still_serves(server)


def test_sanitizers_stay_silent_through_a_clean_exit(server):
    still_serves(server)
    code, stderr = server.stop()
    assert code == 0, stderr
    for report in ("AddressSanitizer", "LeakSanitizer", "runtime error"):
        assert report not in stderr, stderr
    assert stderr.splitlines()[-1] == "kiln: serve: stopped"


def test_batching_needs_outputs_that_split_by_rows(tmp_path):
    """The dense test model takes 4 rows but answers one row of logits: no rows to hand back."""
    four = kit.build_dense_model(tmp_path, input_shape=(4, 784))
    done = kit.run(four.exe, "serve", "--port", str(serve_harness.free_port()), "--max-batch", "2",
                   "--weights", str(four.weights_file))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "kiln: serve: --max-batch needs every input and output of model 'tiny' to lead with its batch 4")
