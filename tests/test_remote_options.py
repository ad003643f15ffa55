"""Remote options: command line over .kilnrc, header accumulation, ~/.netrc, mistakes."""

from __future__ import annotations

import base64

import pytest

from kiln.build_rules.errors import UserError
from kiln.build_rules.remote.options import resolve

NONE = {"remote_cache": None, "remote_executor": None, "remote_header": (), "remote_upload_local_results": None,
        "remote_timeout": None, "remote_instance_name": None}


@pytest.fixture(autouse=True)
def no_netrc(tmp_path, monkeypatch):
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_no_options_no_remote(tmp_path):
    assert not resolve(tmp_path, "build", NONE).enabled


def test_command_line_wins_and_headers_accumulate(tmp_path):
    (tmp_path / ".kilnrc").write_text("build --remote_cache=http://rc:8080/p --remote_header=X-Team=ml\n"
                                      "run --remote_timeout=5\n"
                                      "build --noremote_upload_local_results\n")
    flags = {**NONE, "remote_cache": "grpc://cli:1", "remote_header": ("X-User=me",)}
    options = resolve(tmp_path, "build", flags)
    assert options.cache == "grpc://cli:1" and not options.upload_local_results
    assert options.headers == (("X-Team", "ml"), ("X-User", "me")) and options.timeout == 60
    assert resolve(tmp_path, "run", NONE).timeout == 5
    assert resolve(tmp_path, "run", {**NONE, "remote_upload_local_results": True}).upload_local_results


def test_netrc_gives_basic_auth_unless_a_header_does(tmp_path, monkeypatch):
    (tmp_path / "netrc").write_text("machine cache.example login ann password pw\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    options = resolve(tmp_path, "build", {**NONE, "remote_cache": "https://cache.example/kiln"})
    assert options.headers == (("Authorization", "Basic " + base64.b64encode(b"ann:pw").decode()),)
    explicit = {**NONE, "remote_cache": "https://cache.example", "remote_header": ("authorization=Bearer t",)}
    assert resolve(tmp_path, "build", explicit).headers == (("authorization", "Bearer t"),)


@pytest.mark.parametrize("flags, message", [
    ({"remote_cache": "cache:8080"}, "expected http://HOST:PORT"),
    ({"remote_executor": "http://x:1"}, "expected grpc://HOST:PORT or grpcs://HOST:PORT"),
    ({"remote_header": ("NoEquals",)}, "expected NAME=VALUE"),
    ({"remote_cache": "http://x:1", "remote_timeout": "soon"}, "expected a number of seconds"),
])
def test_mistakes_are_one_line_errors(tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        resolve(tmp_path, "build", {**NONE, **flags})
