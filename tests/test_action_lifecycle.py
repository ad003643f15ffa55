"""Actions end: a per-action timeout, SIGINT/SIGTERM to kiln alone stop them and clean their
execution roots, and execution roots a killed kiln left behind go with the next build."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import executed
from tool_skips import require_tool

SLOW = 'genrule(name = "slow", outs = ["slow.txt"], cmd = "sleep 37.5; echo done > $@"{extra})\n'


def sandbox_dirs(cache: Path) -> list[Path]:
    root = cache / "kiln" / "sandbox"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def sleepers() -> list[str]:
    """Processes running the actions' `sleep 37.5`, found in /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command[:2] == [b"sleep", b"37.5"]:
            found.append(entry.name)
    return found


def test_a_target_timeout_fails_the_action_quickly(workspace):
    workspace.write("t/BUILD.kiln", SLOW.format(extra=", timeout = 1"))
    started = time.monotonic()
    done = workspace.kiln("build", "//t:slow")
    assert done.returncode == 1 and time.monotonic() - started < 20
    assert "timed out after 1 s" in done.stderr
    assert not sleepers() and not sandbox_dirs(workspace.cache)


def test_the_command_line_timeout(workspace):
    workspace.write("t/BUILD.kiln", SLOW.format(extra=""))
    done = workspace.kiln("build", "--action_timeout=1.5", "//t:slow")
    assert done.returncode == 1 and "timed out after 1.5 s" in done.stderr


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_kiln_alone_stops_its_actions(workspace, signum, code):
    workspace.write("t/BUILD.kiln", SLOW.format(extra=""))
    env = {**os.environ, "XDG_CACHE_HOME": str(workspace.cache)}
    # A session of its own: the signal reaches kiln only, as `kill -INT <pid>` would.
    process = subprocess.Popen([sys.executable, "-m", "kiln.build_rules", "build", "//t:slow"], cwd=workspace.root,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 30
    while not sleepers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleepers(), "the action never started"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == code, stderr
    assert not sleepers() and not sandbox_dirs(workspace.cache)


def test_execution_roots_of_a_killed_kiln_go_with_the_next_build(workspace):
    workspace.write("t/BUILD.kiln", SLOW.format(extra="") + 'genrule(name = "quick", outs = ["q.txt"], cmd = "echo q > $@")\n')
    env = {**os.environ, "XDG_CACHE_HOME": str(workspace.cache)}
    process = subprocess.Popen([sys.executable, "-m", "kiln.build_rules", "build", "//t:slow"], cwd=workspace.root,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while not sleepers() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert sandbox_dirs(workspace.cache), "SIGKILL leaves the execution root behind"
    assert executed(workspace.build_log("//t:quick")) == ["//t:quick"]
    assert not sandbox_dirs(workspace.cache)


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_sandbox_debug_keeps_a_failed_action_and_replays_it(workspace, sandbox):
    if sandbox == "bwrap":
        require_tool("bubblewrap", bool(shutil.which("bwrap")))
    workspace.write("t/in.txt", "input\n")
    workspace.write("t/BUILD.kiln", 'genrule(name = "bad", srcs = ["in.txt"], outs = ["o.txt"], '
                    'cmd = "cat $< > $@; echo broken >&2; exit 3")\n')
    done = workspace.kiln("build", "--sandbox_debug", "//t:bad", env={"KILN_SANDBOX": sandbox})
    assert done.returncode == 1
    script = Path(re.search(r"sandbox kept, replay with (\S+\.replay\.sh)", done.stderr).group(1))
    kept = Path(str(script).removesuffix(".replay.sh"))
    assert (kept / "t" / "in.txt").read_text() == "input\n"
    replay = subprocess.run([str(script)], capture_output=True, text=True)
    assert replay.returncode == 3 and replay.stderr == "broken\n"
    assert not sandbox_dirs(workspace.cache)  # the live sandbox went; only the kept copy stays
