"""The REAPI over gRPC against BuildGrid on loopback: remote cache, and remote execution on bots that
show an action only the system directories (fixtures/remote/bot.py): the tools come in the input root."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tool_skips import MISSING_TOOL

from conftest import REPO, Workspace, executed
from fixtures.remote.servers import BuildGrid, free_port

pytest.importorskip("buildgrid", reason=MISSING_TOOL + "BuildGrid (pip install -e '.[test]')")

CHAIN = """
genrule(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "tr a-z A-Z < $< > $@")
genrule(name = "b", srcs = [":a"], outs = ["sub/b.txt"], cmd = "cat $< $< > $@")
genrule(name = "c", srcs = [":b", "in.txt"], outs = ["c.txt"], cmd = "cat $(SRCS) | wc -c > $@")
genrule(name = "tool", outs = ["tool.sh"], cmd = "printf '#!/bin/sh\\\\necho tool\\\\n' > $@; chmod +x $@")
"""


@pytest.fixture(scope="module")
def buildgrid(tmp_path_factory):
    server = BuildGrid(tmp_path_factory.mktemp("buildgrid"), bots=2)
    yield server
    server.stop()


def chain_workspace(root: Path, cache: Path, text: str) -> Workspace:
    """The genrule chain; `text` makes its actions differ from other tests' on the shared server."""
    ws = Workspace(root, cache)
    ws.write("MODULE.kiln", "")
    ws.write("p/BUILD.kiln", CHAIN)
    ws.write("p/in.txt", text)
    return ws


def examples_workspace(root: Path, cache: Path, zig_cache_from: Path | None = None) -> Workspace:
    """A copy of examples/; its kiln cache may share zig's own cache (the compiler's, not kiln's store:
    warmed once, it goes to the worker in each link's input root)."""
    shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns("kiln-out"))
    if zig_cache_from is not None:
        (zig_cache_from / "kiln" / "zig-cache").mkdir(parents=True, exist_ok=True)
        (cache / "kiln").mkdir(parents=True)
        (cache / "kiln" / "zig-cache").symlink_to(zig_cache_from / "kiln" / "zig-cache")
    return Workspace(root, cache)


def remote_build(ws: Workspace, url: str, target: str) -> tuple[list[dict], str]:
    """Build `target` with the remote executor: the execution log and the remote statistics line."""
    log = ws.root.parent / f"{ws.root.name}-log.json"
    done = ws.kiln("build", "--execution_log", str(log), target, f"--remote_executor={url}", "--jobs=50", check=True)
    return json.loads(log.read_text()), next(line for line in done.stderr.splitlines() if "remote cache:" in line)


def outputs(ws: Workspace, *paths: str) -> dict[str, bytes]:
    out = ws.root / "kiln-out"
    found = [out / p for p in paths] if paths else [p for p in sorted(out.rglob("*")) if p.is_file()]
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in found if p.name != ".lock"}


def test_grpc_cache_serves_a_clean_workspace(buildgrid, tmp_path):
    first = chain_workspace(tmp_path / "one", tmp_path / "cache-one", "grpc cache\n")
    assert len(executed(first.build_log("//p:all", f"--remote_cache={buildgrid.url}"))) == 4
    second = chain_workspace(tmp_path / "two", tmp_path / "cache-two", "grpc cache\n")
    done = second.kiln("build", "//p:all", f"--remote_cache={buildgrid.url}", check=True)
    assert "4 hits, 0 misses (100% hit rate)" in done.stderr
    assert outputs(second) == outputs(first)


def test_remote_execution_of_a_genrule_chain(buildgrid, tmp_path):
    local = chain_workspace(tmp_path / "local", tmp_path / "cache-local", "remote chain\n")
    local.kiln("build", "//p:all", check=True)
    remote = chain_workspace(tmp_path / "remote", tmp_path / "cache-remote", "remote chain\n")
    log = remote.build_log("//p:all", f"--remote_executor={buildgrid.url}", "--jobs=50")
    assert {"//p:a", "//p:b", "//p:c"} <= set(executed(log)) and all(e["remote"] for e in log)
    assert outputs(remote) == outputs(local)
    assert (remote.out("p/tool.sh").stat().st_mode & 0o777) == 0o755
    again = chain_workspace(tmp_path / "again", tmp_path / "cache-again", "remote chain\n")
    done = again.kiln("build", "//p:all", f"--remote_executor={buildgrid.url}", check=True)
    assert "4 hits, 0 misses (100% hit rate)" in done.stderr and "0 executed remotely" in done.stderr
    assert outputs(again) == outputs(local)


def test_remote_failure_shows_the_command_and_stderr(buildgrid, tmp_path):
    ws = chain_workspace(tmp_path / "ws", tmp_path / "cache", "")
    ws.write("f/BUILD.kiln", 'genrule(name = "bad", outs = ["o"], cmd = "echo remote-oops >&2; exit 3")\n')
    done = ws.kiln("build", "//f:bad", f"--remote_executor={buildgrid.url}")
    assert done.returncode == 1
    assert "exit code 3 (remote)" in done.stderr and "remote-oops" in done.stderr


def test_unreachable_executor_warns_once_and_builds_locally(tmp_path):
    ws = chain_workspace(tmp_path / "ws", tmp_path / "cache", "nobody there\n")
    done = ws.kiln("build", "//p:all", f"--remote_executor=grpc://127.0.0.1:{free_port()}", "--remote_timeout=5",
                   check=True)
    assert len([line for line in done.stderr.splitlines() if line.startswith("WARNING")]) == 1
    assert "UNAVAILABLE" in done.stderr
    assert ws.out("p/sub/b.txt").read_text() == "NOBODY THERE\n" * 2


@pytest.mark.e2e
def test_hello_built_remotely_has_the_local_bytes(buildgrid, tmp_path, kiln_cache):
    """examples/hello with zig from the input root, from an empty local store: same bytes as a local build."""
    local = examples_workspace(tmp_path / "local", kiln_cache)
    local.kiln("build", "//hello:all", check=True)
    remote = examples_workspace(tmp_path / "remote", tmp_path / "cache-remote", zig_cache_from=kiln_cache)
    log, stats = remote_build(remote, buildgrid.url, "//hello:all")
    assert executed(log) and all(e["remote"] for e in log), stats
    paths = ["linux-amd64-cpu/hello/hello", "linux-amd64-cpu/hello/hello_output.txt"]
    assert outputs(remote, *paths) == outputs(local, *paths)
    run = subprocess.run([remote.out("hello/hello"), "remote"], capture_output=True, text=True)
    assert run.stdout == "Hello, remote!\n"


@pytest.mark.e2e
def test_mnist_archive_built_remotely_has_the_local_bytes(buildgrid, tmp_path, kiln_cache):
    """The compiler, the packer and zig run on a bot that sees none of this machine's Python, virtualenv,
    zig or checkout; a second empty store then gets every action from the remote cache."""
    local = examples_workspace(tmp_path / "local", kiln_cache)
    local.kiln("build", "//mnist:archive", check=True)
    remote = examples_workspace(tmp_path / "remote", tmp_path / "cache-remote", zig_cache_from=kiln_cache)
    log, first = remote_build(remote, buildgrid.url, "//mnist:archive")
    assert executed(log) and all(e["remote"] for e in log) and f"{len(log)} executed remotely" in first, first
    archive = "linux-amd64-cpu/mnist/mnist.tar.gz"
    assert outputs(remote, archive) == outputs(local, archive)
    again = examples_workspace(tmp_path / "again", tmp_path / "cache-again")
    _, second = remote_build(again, buildgrid.url, "//mnist:archive")
    assert f"{len(log)} hits, 0 misses" in second and "0 executed remotely" in second and " 0 B up" in second, second
    assert outputs(again, archive) == outputs(local, archive)
    print(f"\nfirst build: {first}\nsecond build: {second}")


def test_progress_line_counts_remote_and_local():
    from kiln.build_rules.actions import Action
    from kiln.build_rules.labels import Label
    from kiln.build_rules.progress import Progress
    progress = Progress(3, quiet=True, remote=True)
    progress.completed(cached=False, remote=True)
    progress.completed(cached=False, remote=False)
    progress.started(Action(Label("p", "x"), "Genrule", (), (), (), progress="Executing genrule //p:x"), 0.0)
    assert progress._line().startswith("[2/3, 1 remote, 1 local] Executing genrule //p:x")
