"""The build engine through the `kiln` command: caching, invalidation, errors, sandboxing."""

import os
import signal
import subprocess
import sys
import time

import pytest
from tool_skips import require_tool

from conftest import executed

CHAIN = """
genrule(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "tr a-z A-Z < $< > $@")
genrule(name = "b", srcs = [":a"], outs = ["b.txt"], cmd = "cat $< $< > $@")
genrule(name = "c", srcs = ["other.txt"], outs = ["c.txt"], cmd = "cp $< $@")
"""


@pytest.fixture
def chain(workspace):
    workspace.write("p/BUILD.kiln", CHAIN)
    workspace.write("p/in.txt", "hello\n")
    workspace.write("p/other.txt", "other\n")
    return workspace


def test_build_produces_outputs(chain):
    log = chain.build_log("//p:all")
    assert executed(log) == ["//p:a", "//p:b", "//p:c"]
    assert chain.out("p/b.txt").read_text() == "HELLO\nHELLO\n"


def test_second_build_runs_nothing(chain):
    chain.build_log("//...")
    assert executed(chain.build_log("//...")) == []


def test_touch_without_change_runs_nothing(chain):
    chain.build_log("//...")
    time.sleep(0.01)
    os.utime(chain.root / "p/in.txt")
    assert executed(chain.build_log("//...")) == []


def test_change_reruns_exactly_downstream(chain):
    chain.build_log("//...")
    chain.write("p/in.txt", "changed\n")
    assert executed(chain.build_log("//...")) == ["//p:a", "//p:b"]
    assert chain.out("p/b.txt").read_text() == "CHANGED\nCHANGED\n"


def test_same_output_bytes_stop_invalidation(chain):
    chain.build_log("//...")
    chain.write("p/BUILD.kiln", CHAIN.replace("tr a-z A-Z < $< > $@", "tr a-z A-Z < $< > $@ # same output"))
    assert executed(chain.build_log("//...")) == ["//p:a"]


def test_cache_is_shared_across_workspaces(chain, tmp_path):
    chain.build_log("//...")
    (chain.root / "kiln-out").rename(tmp_path / "old-out")
    log = chain.build_log("//...")
    assert executed(log) == [] and chain.out("p/b.txt").read_text() == "HELLO\nHELLO\n"


def test_corrupted_store_entry_is_rebuilt(chain):
    chain.build_log("//p:a")
    blobs = [p for p in (chain.cache / "kiln" / "cas").rglob("*") if p.is_file()
             and p.read_bytes() == b"HELLO\n"]
    assert blobs
    os.chmod(blobs[0], 0o644)
    blobs[0].write_bytes(b"EVIL!\n")
    (chain.out("p/a.txt")).unlink()
    done = chain.kiln("build", "//p:a", check=True)
    assert "corrupted" in done.stderr
    assert chain.out("p/a.txt").read_text() == "HELLO\n"


def test_sigkill_mid_action_leaves_nothing_trusted(workspace):
    workspace.write("k/BUILD.kiln", 'genrule(name = "slow", outs = ["slow.txt"], '
                    'cmd = "printf partial > $@; sleep 30; printf done > $@")\n')
    env = {**os.environ, "XDG_CACHE_HOME": str(workspace.cache)}
    process = subprocess.Popen([sys.executable, "-m", "kiln.build_rules", "build", "//k:slow"], cwd=workspace.root,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not workspace.out("k/slow.txt").exists()
    workspace.write("k/BUILD.kiln", 'genrule(name = "slow", outs = ["slow.txt"], '
                    'cmd = "printf partial > $@; sleep 0; printf done > $@")\n')
    assert executed(workspace.build_log("//k:slow")) == ["//k:slow"]
    assert workspace.out("k/slow.txt").read_text() == "done"


def test_two_builds_at_once(chain):
    chain.write("p/BUILD.kiln", CHAIN.replace('"cp $< $@"', '"sleep 1; cp $< $@"'))
    env = {**os.environ, "XDG_CACHE_HOME": str(chain.cache)}
    command = [sys.executable, "-m", "kiln.build_rules", "build", "//..."]
    first = subprocess.Popen(command, cwd=chain.root, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.run(command, cwd=chain.root, env=env, capture_output=True, text=True)
    assert first.wait() == 0 and second.returncode == 0
    assert "waiting" in second.stderr
    assert chain.out("p/c.txt").read_text() == "other\n"


def test_undeclared_read_fails_naming_the_file(workspace):
    workspace.write("u/secret.txt", "s\n")
    workspace.write("u/BUILD.kiln", 'genrule(name = "peek", outs = ["o.txt"], cmd = "cat u/secret.txt > $@")\n')
    done = workspace.kiln("build", "//u:peek")
    assert done.returncode == 1
    assert "reads 'u/secret.txt', which is not a declared input" in done.stderr
    assert "//u:peek" in done.stderr


def test_actions_have_no_network(workspace):
    workspace.write("n/BUILD.kiln", 'genrule(name = "net", outs = ["o.txt"], '
                    'cmd = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \' \' > $@")\n')
    require_tool("bubblewrap", subprocess.run(["which", "bwrap"], capture_output=True).returncode == 0)
    workspace.kiln("build", "//n:net", check=True)
    assert workspace.out("n/o.txt").read_text().split() == ["lo"]


def test_failure_reports_target_command_and_stderr(workspace):
    workspace.write("f/BUILD.kiln", 'genrule(name = "bad", outs = ["o"], cmd = "echo oops >&2; exit 3")\n')
    done = workspace.kiln("build", "//f:bad")
    assert done.returncode == 1
    assert "ERROR: //f:bad" in done.stderr and "exit code 3" in done.stderr
    assert "oops" in done.stderr and "command: /bin/sh -c" in done.stderr


def test_keep_going_builds_the_rest(workspace):
    workspace.write("g/BUILD.kiln", 'genrule(name = "bad", outs = ["o"], cmd = "exit 1")\n'
                    'genrule(name = "good", outs = ["g"], cmd = "echo ok > $@")\n')
    done = workspace.kiln("build", "--keep_going", "-j", "1", "//g:all")
    assert done.returncode == 1 and workspace.out("g/g").read_text() == "ok\n"


def test_missing_output_is_an_error(workspace):
    workspace.write("m/BUILD.kiln", 'genrule(name = "lazy", outs = ["o"], cmd = "true")\n')
    done = workspace.kiln("build", "//m:lazy")
    assert "did not create the declared output kiln-out/linux-amd64-cpu/m/o" in done.stderr


def test_load_macro_and_location(workspace):
    workspace.write("tools/BUILD.kiln", "")
    workspace.write("tools/defs.kiln", 'def upper(name, src):\n'
                    '    genrule(name = name, srcs = [src], outs = [name + ".txt"], cmd = "tr a-z A-Z < $(location " + src + ") > $@")\n')
    workspace.write("m/BUILD.kiln", 'load("//tools:defs.kiln", "upper")\nupper(name = "u", src = "x.txt")\n')
    workspace.write("m/x.txt", "abc\n")
    workspace.kiln("build", "//m:u", check=True)
    assert workspace.out("m/u.txt").read_text() == "ABC\n"


def test_platform_config_names_output_dir(chain):
    chain.kiln("build", "--platform=rocm:gfx942,linux-arm64", "//p:a", check=True)
    assert chain.out("p/a.txt", "linux-arm64-cpu-rocm_gfx942").read_text() == "HELLO\n"


def test_clean_removes_outputs(chain):
    chain.build_log("//...")
    chain.kiln("clean", check=True)
    assert not chain.out("p/a.txt").exists()
