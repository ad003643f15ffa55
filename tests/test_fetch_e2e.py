"""The fetcher and `lock --update` with the real clients (apt-get, pip) on small artifacts, each test with a
throwaway cache; failures of every kind must come out as one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from tool_skips import needs_tool

from kiln.runtime_trim.elf import read_elf
from kiln.toolchain import debian, fetch
from kiln.toolchain.errors import FetchError
from kiln.toolchain.lock import update_pin
from kiln.toolchain.lockfile import DEFAULT_LOCK, Lock, load

pytestmark = [pytest.mark.e2e,
              needs_tool("apt-get (pinned .debs come through apt-get)", shutil.which("apt-get") is not None)]
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens, every connection is refused


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def with_pin(name: str, arch: str = "amd64", **changes) -> Lock:
    lock = load()
    changed = replace(lock.find(name, arch), **changes)
    return replace(lock, artifacts=tuple(changed if (a.name, a.arch) == (name, arch) else a for a in lock.artifacts))


def one_line_error(call) -> str:
    with pytest.raises(FetchError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_fetches_a_deb_and_a_wheel():
    numa = fetch.ensure("libnuma1")
    assert (numa / "usr/lib/x86_64-linux-gnu/libnuma.so.1").exists()
    cudart = fetch.ensure("nvidia-cuda-runtime")
    assert read_elf(cudart / "nvidia/cu13/lib/libcudart.so.13").soname == "libcudart.so.13"


def test_base_set_for_arm64():
    trees = fetch.ensure_set("base", "arm64")
    libc = next(t for t in trees if (t / "lib/aarch64-linux-gnu/libc.so.6").exists())
    assert read_elf(libc / "lib/aarch64-linux-gnu/libc.so.6").machine == "EM_AARCH64"
    assert len(trees) == 3


def test_sha256_mismatch_unpacks_nothing(fresh_cache):
    message = one_line_error(lambda: fetch.ensure("libnuma1", lock=with_pin("libnuma1", sha256="0" * 64)))
    actual = load().find("libnuma1", "amd64").sha256
    assert message.startswith("libnuma1 2.0.16-1 (deb, amd64): sha256 mismatch for libnuma1_2.0.16-1_amd64.deb")
    assert f"expected {'0' * 64}, got {actual}" in message
    assert not any(p.is_dir() for p in (fresh_cache / "kiln/external").iterdir())


def test_truncated_download(monkeypatch):
    real_download = debian.download

    def truncating(artifact, directory):
        deb = real_download(artifact, directory)
        deb.write_bytes(deb.read_bytes()[:1000])
        return deb

    monkeypatch.setattr(debian, "download", truncating)
    message = one_line_error(lambda: fetch.ensure("libnuma1"))
    assert "truncated download of libnuma1_2.0.16-1_amd64.deb: 1000 of" in message


def test_missing_versions():
    apt = one_line_error(lambda: fetch.ensure("libnuma1", lock=with_pin("libnuma1", version="0.0-kiln-missing")))
    assert "libnuma1 0.0-kiln-missing (deb, amd64): not available from apt's package lists for bookworm" in apt
    pip = one_line_error(lambda: fetch.ensure("nvidia-cuda-runtime", lock=with_pin("nvidia-cuda-runtime",
                                                                                   version="0.0.1")))
    assert "nvidia-cuda-runtime 0.0.1 (wheel, amd64): not available from the package index" in pip


def test_unreachable_package_index(monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no mirror from the machine's pip config either
    for variable in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE)
    monkeypatch.setenv("PIP_RETRIES", "0")
    message = one_line_error(lambda: fetch.ensure("nvidia-cuda-runtime"))
    assert message.startswith(f"nvidia-cuda-runtime 13.5.37 (wheel, amd64): pip could not reach the package index "
                              f"at {UNREACHABLE}")
    assert message.endswith("(Failed to establish a new connection: [Errno 111] Connection refused)")


def test_unreachable_package_archive(tmp_path, monkeypatch):
    config = tmp_path / "apt.conf"
    config.write_text(f'Acquire::http::Proxy "{UNREACHABLE}";\nAcquire::https::Proxy "{UNREACHABLE}";\n'
                      'Acquire::Retries "0";\n')
    monkeypatch.setenv("APT_CONFIG", str(config))
    message = one_line_error(lambda: fetch.ensure("libnuma1"))
    assert message.startswith("libnuma1 2.0.16-1 (deb, amd64): apt could not reach the package archive")
    assert "127.0.0.1" in message


def test_concurrent_processes_share_one_tree(fresh_cache):
    command = [sys.executable, "-m", "kiln.toolchain.fetch", "libnuma1", "libdrm-common"]
    env = {**os.environ, "XDG_CACHE_HOME": str(fresh_cache)}
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = {p.communicate()[0] for p in processes}
    assert all(p.returncode == 0 for p in processes) and len(outputs) == 1
    trees = [Path(line) for line in outputs.pop().split()]
    unpacked = sorted(p.name for p in (fresh_cache / "kiln/external").iterdir() if p.is_dir())
    assert unpacked == sorted(t.name for t in trees)  # no second copy, no temporary left behind


def test_update_pin_rewrites_only_that_pin(tmp_path):
    lock_path = tmp_path / "lock.toml"
    lock_path.write_text(DEFAULT_LOCK.read_text())
    updated = update_pin("libnuma1", lock_path)
    assert [a.arch for a in updated] == ["amd64", "arm64"]
    candidate = debian.candidate(load().find("libnuma1", "amd64"))
    new, old = load(lock_path), load()
    assert new.find("libnuma1", "amd64").version == candidate
    if candidate == old.find("libnuma1", "amd64").version:
        assert lock_path.read_text() == DEFAULT_LOCK.read_text()  # same version, same bytes, same file
    assert [a for a in new.artifacts if a.name != "libnuma1"] == [a for a in old.artifacts if a.name != "libnuma1"]


def test_lock_cli_reports_errors_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kiln.toolchain.lock", "--update", "no-such-package",
                           "--lock", str(DEFAULT_LOCK)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr == "lock: error: no-such-package is not in lock.toml\n"
