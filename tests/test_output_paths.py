"""Output paths and target names stay inside their package's output directory; a BUILD file that
tries otherwise is rejected at loading with file:line:col, before anything runs."""

from __future__ import annotations

import pytest

GENRULE = 'genrule(name = "{name}", outs = {outs}, cmd = "echo hi > $@")\n'


@pytest.mark.parametrize("name,outs,message", [
    ("g", '["../../../.git/hooks/post-checkout"]',
     "genrule(): outs '../../../.git/hooks/post-checkout' must be a normalized path inside the package"),
    ("g", '["/tmp/evil"]', "genrule(): outs '/tmp/evil' must be relative to the package, not absolute"),
    ("g", '[""]', "genrule(): outs '' must be a normalized path inside the package"),
    ("g", '["a//b"]', "genrule(): outs 'a//b' must be a normalized path inside the package"),
    ("g", '["./a"]', "genrule(): outs './a' must be a normalized path inside the package"),
    ("../../x", '["a"]', "genrule(): name '../../x' must be a normalized path inside the package"),
    ("/abs", '["a"]', "genrule(): name '/abs' must be relative to the package, not absolute"),
    ("g", '["d", "d/b.txt"]', "genrule(): outs has 'd' as a file and as the directory of 'd/b.txt'"),
    ("g", '["a.txt", "a.txt"]', "genrule(): outs lists 'a.txt' twice"),
])
def test_escaping_or_clashing_outputs_are_refused_with_their_location(workspace, name, outs, message):
    workspace.write("p/BUILD.kiln", "\n" + GENRULE.format(name=name, outs=outs))
    done = workspace.kiln("build", "//p:all")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: p/BUILD.kiln:2:1: ") and message in lines[0], done.stderr
    assert not (workspace.root / ".git").exists() and not (workspace.root.parent / ".git").exists()


def test_an_output_inside_another_targets_output_is_a_conflict(workspace):
    workspace.write("p/BUILD.kiln", GENRULE.format(name="a", outs='["d"]') + GENRULE.format(name="b", outs='["d/b.txt"]'))
    done = workspace.kiln("build", "//p:all")
    assert done.returncode == 1
    assert "output conflict: //p:a writes kiln-out/linux-amd64-cpu/p/d, which //p:b needs as the directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_names_with_slashes_inside_the_package_still_work(workspace):
    workspace.write("p/BUILD.kiln", GENRULE.format(name="sub/g", outs='["sub/out.txt"]'))
    workspace.kiln("build", "//p:sub/g", check=True)
    assert workspace.out("p/sub/out.txt").read_text() == "hi\n"
