"""The remote cache over Bazel's HTTP protocol, against nginx with WebDAV PUT on loopback."""

from __future__ import annotations

import base64
import shutil
import socket
import stat
from pathlib import Path

import pytest
from tool_skips import needs_tool

from conftest import Workspace, executed
from fixtures.remote.servers import Nginx, free_port

pytestmark = needs_tool("nginx (apt-get install nginx-light)",
                        shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists())

CHAIN = """
genrule(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "tr a-z A-Z < $< > $@")
genrule(name = "b", srcs = [":a"], outs = ["b.txt"], cmd = "cat $< $< > $@")
genrule(name = "tool", outs = ["tool.sh"], cmd = "printf '#!/bin/sh\\\\necho tool\\\\n' > $@; chmod +x $@")
"""


@pytest.fixture
def nginx(tmp_path):
    server = Nginx(tmp_path / "nginx")
    yield server
    server.stop()


def chain_workspace(root: Path, cache: Path) -> Workspace:
    ws = Workspace(root, cache)
    ws.write("MODULE.kiln", "")
    ws.write("p/BUILD.kiln", CHAIN)
    ws.write("p/in.txt", "hello\n")
    return ws


def outputs(ws: Workspace) -> dict[str, bytes]:
    out = ws.root / "kiln-out"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("WARNING")]


def test_clean_workspace_gets_every_action_from_the_cache(nginx, tmp_path):
    first = chain_workspace(tmp_path / "one", tmp_path / "cache-one")
    assert len(executed(first.build_log("//p:all", f"--remote_cache={nginx.url}/team"))) == 3
    assert len(list((nginx.root / "team" / "ac").iterdir())) == 3

    second = chain_workspace(tmp_path / "two", tmp_path / "cache-two")
    log = second.build_log("//p:all", f"--remote_cache={nginx.url}/team")
    assert executed(log) == [] and all(e["remote"] for e in log)
    assert outputs(second) == outputs(first)
    assert stat.S_IMODE(second.out("p/tool.sh").stat().st_mode) == 0o755
    done = second.kiln("build", "//p:all", f"--remote_cache={nginx.url}/team", cache=tmp_path / "cache-three")
    assert "3 hits, 0 misses (100% hit rate)" in done.stderr


def test_no_upload_of_local_results(nginx, tmp_path):
    ws = chain_workspace(tmp_path / "ws", tmp_path / "cache")
    done = ws.kiln("build", "//p:all", f"--remote_cache={nginx.url}", "--noremote_upload_local_results", check=True)
    assert "0 uploads" in done.stderr and not (nginx.root / "ac").exists()


def test_action_results_are_reapi_messages(nginx, tmp_path):
    from kiln.build_rules.remote.protos import ActionResult
    ws = chain_workspace(tmp_path / "ws", tmp_path / "cache")
    ws.kiln("build", "//p:a", f"--remote_cache={nginx.url}", check=True)
    (entry,) = (nginx.root / "ac").iterdir()
    result = ActionResult.FromString(entry.read_bytes())
    (output,) = result.output_files
    assert output.path == "kiln-out/linux-amd64-cpu/p/a.txt"
    assert (nginx.root / "cas" / output.digest.hash).read_bytes() == b"HELLO\n"


def test_unreachable_cache_warns_once_and_builds_locally(tmp_path):
    ws = chain_workspace(tmp_path / "ws", tmp_path / "cache")
    done = ws.kiln("build", "//p:all", f"--remote_cache=http://127.0.0.1:{free_port()}", check=True)
    assert len(warnings(done.stderr)) == 1 and "Connection refused" in done.stderr
    assert ws.out("p/b.txt").read_text() == "HELLO\nHELLO\n"


def test_silent_cache_times_out_once_and_builds_locally(tmp_path):
    ws = chain_workspace(tmp_path / "ws", tmp_path / "cache")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        done = ws.kiln("build", "//p:all", f"--remote_cache={url}", "--remote_timeout=1", check=True)
    assert warnings(done.stderr) == [f"WARNING: remote {url} failed: no answer within 1s; building locally from now on"]
    assert ws.out("p/b.txt").read_text() == "HELLO\nHELLO\n"


def test_corrupted_blob_is_a_miss_with_a_warning(nginx, tmp_path):
    first = chain_workspace(tmp_path / "one", tmp_path / "cache-one")
    first.kiln("build", "//p:a", f"--remote_cache={nginx.url}", check=True)
    (blob,) = [p for p in (nginx.root / "cas").iterdir() if p.read_bytes() == b"HELLO\n"]
    blob.write_bytes(b"EVIL!\n")
    second = chain_workspace(tmp_path / "two", tmp_path / "cache-two")
    done = second.kiln("build", "//p:a", f"--remote_cache={nginx.url}", check=True)
    assert "unusable" in done.stderr and "0 hits, 1 misses" in done.stderr
    assert second.out("p/a.txt").read_text() == "HELLO\n"


def test_kilnrc_and_auth(tmp_path):
    server = Nginx(tmp_path / "nginx", password="s3cret")
    try:
        ws = chain_workspace(tmp_path / "ws", tmp_path / "cache")
        token = base64.b64encode(b"kiln:s3cret").decode()
        ws.write(".kilnrc", f"# the team cache\nbuild --remote_cache={server.url}\n"
                            f"build \"--remote_header=Authorization=Basic {token}\"\n")
        ws.kiln("build", "//p:a", check=True)
        assert len(list((server.root / "ac").iterdir())) == 1

        ws.write(".kilnrc", f"build --remote_cache={server.url}\n")
        denied = ws.kiln("build", "//p:b", check=True, cache=tmp_path / "cache-2")
        assert len(warnings(denied.stderr)) == 1 and "401" in denied.stderr

        home = tmp_path / "home"
        home.mkdir()
        (home / ".netrc").write_text("machine 127.0.0.1 login kiln password s3cret\n")
        (home / ".netrc").chmod(0o600)
        fetched = ws.kiln("build", "//p:b", check=True, cache=tmp_path / "cache-3", env={"HOME": str(home)})
        assert "WARNING" not in fetched.stderr and "1 hits" in fetched.stderr
    finally:
        server.stop()


def test_bad_kilnrc_line_names_the_file(tmp_path):
    ws = chain_workspace(tmp_path / "ws", tmp_path / "cache")
    ws.write(".kilnrc", "build --jobs=3\n")
    done = ws.kiln("build", "//p:a")
    assert done.returncode == 1 and ".kilnrc:1: '--jobs=3' is not a remote option" in done.stderr


def test_directory_outputs_round_trip_as_trees(nginx, tmp_path):
    """An output directory travels as a REAPI Tree and comes back with the same files, modes and digest."""
    from kiln.build_rules.actions import Action, Artifact
    from kiln.build_rules.labels import Label
    from kiln.build_rules.remote import RemoteStats
    from kiln.build_rules.remote.cache import ProtocolCache
    from kiln.build_rules.remote.http_cache import HttpCache
    from kiln.build_rules.store import OutputFile, Store

    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "blobs" / "sha256" / "ab").write_bytes(b"layer")
    (layout / "index.json").write_text("{}")
    (layout / "run").write_text("#!/bin/sh\n")
    (layout / "run").chmod(0o755)
    here = Store(tmp_path / "store-here")
    tree = OutputFile(here.put_tree(layout), False, tree=True)
    action = Action(Label("p", "image"), "OciImage", (), (), (Artifact("kiln-out/x/p/layout", directory=True),))
    cache = ProtocolCache(HttpCache(nginx.url, (), 10, RemoteStats()))
    cache.upload("ab" * 32, action, {"kiln-out/x/p/layout": tree}, here)

    there = Store(tmp_path / "store-there")
    fetched = cache.lookup("ab" * 32, action, there)
    assert fetched == {"kiln-out/x/p/layout": tree}
    assert there.tree_files(tree.digest) == here.tree_files(tree.digest)
    assert all(there.verify(f.digest) for f in there.tree_files(tree.digest).values())
