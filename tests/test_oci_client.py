"""The registry client alone: credentials from docker's config, challenges, references, retries, one-line errors."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fixtures.registry.peers import free_port
from kiln.build_rules.oci.auth import AuthError, Credentials, credentials_for, parse_challenge
from kiln.build_rules.oci.registry import Reference, RegistryError, Repository, is_loopback


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    def write(config: dict) -> None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    return write


def helper(tmp_path, monkeypatch, script: str) -> None:
    path = tmp_path / "bin" / "docker-credential-fake"
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{path.parent}:/usr/bin:/bin")


def test_auths_entries_match_by_host(docker_config):
    encoded = base64.b64encode(b"kiln:pa:ss").decode()
    docker_config({"auths": {"https://reg.example.test:5000/v1/": {"auth": encoded}}})
    assert credentials_for("reg.example.test:5000") == Credentials("kiln", "pa:ss")
    assert credentials_for("other.example.test") is None


def test_no_config_means_anonymous(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "absent"))
    assert credentials_for("127.0.0.1:5000") is None


def test_cred_helper_wins_over_auths(docker_config, tmp_path, monkeypatch):
    helper(tmp_path, monkeypatch, 'read host; echo "{\\"Username\\":\\"u-$host\\",\\"Secret\\":\\"s\\"}"\n')
    docker_config({"credHelpers": {"127.0.0.1:5000": "fake"},
                   "auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"x:y").decode()}}})
    assert credentials_for("127.0.0.1:5000") == Credentials("u-127.0.0.1:5000", "s")


def test_creds_store_without_an_entry_is_anonymous(docker_config, tmp_path, monkeypatch):
    helper(tmp_path, monkeypatch, "echo 'credentials not found in native keychain'; exit 1\n")
    docker_config({"credsStore": "fake"})
    assert credentials_for("127.0.0.1:5000") is None


def test_helper_problems_are_clear(docker_config, tmp_path, monkeypatch):
    docker_config({"credsStore": "absent"})
    with pytest.raises(AuthError, match="docker-credential-absent is not on PATH"):
        credentials_for("127.0.0.1:5000")
    helper(tmp_path, monkeypatch, "echo 'keychain locked' >&2; exit 3\n")
    docker_config({"credsStore": "fake"})
    with pytest.raises(AuthError, match="keychain locked"):
        credentials_for("127.0.0.1:5000")


def test_challenges_parse():
    scheme, params = parse_challenge('Bearer realm="http://127.0.0.1:1/token",service="reg",'
                                     'scope="repository:a/b:pull,push"')
    assert (scheme, params) == ("bearer", {"realm": "http://127.0.0.1:1/token", "service": "reg",
                                           "scope": "repository:a/b:pull,push"})
    assert parse_challenge('Basic realm="kiln"') == ("basic", {"realm": "kiln"})


@pytest.mark.parametrize("host, loopback", [("127.0.0.1:5000", True), ("127.3.2.1", True), ("localhost:80", True),
                                            ("[::1]:5000", True), ("10.0.0.1:5000", False),
                                            ("reg.example.test", False)])
def test_plain_http_only_for_loopback_or_insecure(host, loopback):
    assert is_loopback(host) == loopback
    scheme = Repository(Reference(host, "mnist"), None).root.split(":")[0]
    assert scheme == ("http" if loopback else "https")
    assert Repository(Reference(host, "mnist"), None, insecure=True).root.startswith("http://")


def test_references_need_a_host_and_a_valid_name():
    assert Reference.parse("127.0.0.1:5000/team/mnist") == Reference("127.0.0.1:5000", "team/mnist")
    for bad in ("mnist", "team/mnist", "127.0.0.1:5000/MNIST", "127.0.0.1:5000/"):
        with pytest.raises(RegistryError):
            Reference.parse(bad)


@pytest.fixture
def flaky_registry():
    """Answers GET /v2/ with 503 `failures[0]` times, then 200; counts the requests."""
    state = {"failures": 0, "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            failing = state["requests"] <= state["failures"]
            body = b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}' if failing else b"{}"
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_port}", state
    server.shutdown()
    server.server_close()


def test_5xx_is_retried_a_bounded_number_of_times(flaky_registry):
    host, state = flaky_registry
    state["failures"] = 2
    Repository(Reference(host, "mnist"), None, attempts=3, backoff=0.01).ping()
    assert state["requests"] == 3
    state.update(failures=10, requests=0)
    with pytest.raises(RegistryError, match="UNAVAILABLE: try later \\(gave up after 2 attempts\\)"):
        Repository(Reference(host, "mnist"), None, attempts=2, backoff=0.01).ping()
    assert state["requests"] == 2


def push(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiln.build_rules.oci.push", *args], capture_output=True, text=True)


def test_push_errors_are_one_line(tmp_path):
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (tmp_path / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    cases = {("/nonexistent/layout", "--repository", "127.0.0.1:5000/mnist"): "not an OCI image layout",
             (str(tmp_path), "--repository", "127.0.0.1:5000/mnist"): "holds 0 images",
             (str(tmp_path), "--repository", "mnist"): "does not start with a registry host",
             (str(tmp_path), "--repository", "127.0.0.1:5000/mnist", "--tag=a/b"): "not a valid tag"}
    for argv, message in cases.items():
        done = push(*argv)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_unreachable_registry_is_one_line(tmp_path):
    from kiln.build_rules.oci import image
    (tmp_path / "f").write_text("x")
    assert image.main(["--out", str(tmp_path / "img"), "--layer", f"f={tmp_path / 'f'}"]) == 0
    done = push(str(tmp_path / "img"), "--repository", f"127.0.0.1:{free_port()}/mnist", "--tag", "v1",
                "--attempts", "2")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "Connection refused (gave up after 2 attempts); no tag was written" in done.stderr
