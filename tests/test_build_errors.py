"""A user's mistakes give one clear line and exit code 1, never a traceback."""

import pytest


def one_line_error(done) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [l for l in done.stderr.splitlines() if l.startswith("ERROR")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("build, message", [
    ('genrule(name = "x", outs = ["o"], cmd = "true"\n', "p/BUILD.kiln:1:"),
    ('genrule(name = "x", outs = ["o"], cmd = "true")\nx = str(undefined)\n', "p/BUILD.kiln:2:9: Variable `undefined` not found"),
    ('genrule(name = "x", outs = ["o"], cmd = "true", srcz = [])\n', "p/BUILD.kiln:1:1: genrule() got an unknown attribute 'srcz'; did you mean 'srcs'?"),
    ('genrule(name = "x", outs = ["o"])\n', "missing mandatory attribute 'cmd'"),
    ('genrule(name = "x", outs = "o", cmd = "true")\n', "attribute 'outs' must be a string_list, got str"),
    ('genrule(name = "x", outs = ["o"], cmd = "true")\ngenrule(name = "x", outs = ["p"], cmd = "true")\n',
     "p/BUILD.kiln:2:1: duplicate target name 'x' in package //p"),
    ('load("//nowhere:defs.kiln", "f")\n', "does not exist"),
])
def test_build_file_errors(workspace, build, message):
    workspace.write("p/BUILD.kiln", build)
    assert message in one_line_error(workspace.kiln("build", "//p:all"))


def test_missing_target_suggests(workspace):
    workspace.write("p/BUILD.kiln", 'genrule(name = "archive", outs = ["o"], cmd = "true")\n')
    line = one_line_error(workspace.kiln("build", "//p:archiv"))
    assert line == "ERROR: no such target '//p:archiv'; did you mean '//p:archive'?"


def test_missing_dependency_names_who_needs_it(workspace):
    workspace.write("p/BUILD.kiln", 'genrule(name = "x", srcs = [":inptu"], outs = ["o"], cmd = "true")\n'
                    'genrule(name = "input", outs = ["i"], cmd = "true")\n')
    line = one_line_error(workspace.kiln("build", "//p:x"))
    assert "no such target '//p:inptu' (referenced in srcs of //p:x)" in line and "did you mean '//p:input'" in line


def test_missing_package(workspace):
    line = one_line_error(workspace.kiln("build", "//nope:x"))
    assert "no such package '//nope'" in line


def test_dependency_cycle_is_printed(workspace):
    workspace.write("p/BUILD.kiln", 'genrule(name = "a", srcs = [":b"], outs = ["a"], cmd = "true")\n'
                    'genrule(name = "b", srcs = [":c"], outs = ["b"], cmd = "true")\n'
                    'genrule(name = "c", srcs = [":a"], outs = ["c"], cmd = "true")\n')
    line = one_line_error(workspace.kiln("build", "//p:a"))
    assert "dependency cycle: //p:a -> //p:b -> //p:c -> //p:a" in line


def test_output_conflict(workspace):
    workspace.write("p/BUILD.kiln", 'genrule(name = "a", outs = ["same.txt"], cmd = "true")\n'
                    'genrule(name = "b", outs = ["same.txt"], cmd = "true")\n')
    line = one_line_error(workspace.kiln("build", "//p:all"))
    assert "output conflict: kiln-out/linux-amd64-cpu/p/same.txt is produced by both //p:a and //p:b" in line


def test_no_module_file(tmp_path, kiln_cache):
    from conftest import Workspace
    bare = Workspace(tmp_path, kiln_cache)
    line = one_line_error(bare.kiln("build", "//..."))
    assert "no MODULE.kiln" in line


def test_bad_platform(workspace):
    line = one_line_error(workspace.kiln("build", "--platform=gpu", "//..."))
    assert "unknown platform 'gpu'" in line


def test_unknown_make_variable(workspace):
    workspace.write("p/BUILD.kiln", 'genrule(name = "a", outs = ["o"], cmd = "echo $(FOO) > $@")\n')
    assert "unknown make variable $(FOO)" in one_line_error(workspace.kiln("build", "//p:a"))


def test_a_load_cycle_names_the_cycle(workspace):
    workspace.write("t/a.kiln", 'load("//t:b.kiln", "y")\nx = 1\n')
    workspace.write("t/b.kiln", 'load("//t:a.kiln", "x")\ny = 2\n')
    workspace.write("t/BUILD.kiln", 'load("//t:a.kiln", "x")\n')
    line = one_line_error(workspace.kiln("build", "//t:all"))
    assert line.endswith("load cycle: //t:a.kiln -> //t:b.kiln -> //t:a.kiln") and len(line) < 300


@pytest.mark.parametrize("command", [("build", "//p:a"), ("clean",)])
def test_symlinked_output_root_is_refused(workspace, tmp_path, command):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    workspace.write("p/BUILD.kiln", 'genrule(name = "a", outs = ["a.txt"], cmd = "echo a > $@")\n')
    (workspace.root / "kiln-out").symlink_to(victim)
    line = one_line_error(workspace.kiln(*command))
    assert "kiln-out is a symlink" in line and "remove it" in line
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]


@pytest.mark.parametrize("link", [".lock", "linux-amd64-cpu"])
def test_symlink_inside_output_root_is_refused(workspace, tmp_path, link):
    victim = tmp_path / "victim"
    victim.write_text("keep me") if link == ".lock" else victim.mkdir()
    workspace.write("p/BUILD.kiln", 'genrule(name = "a", outs = ["a.txt"], cmd = "echo a > $@")\n')
    (workspace.root / "kiln-out").mkdir()
    (workspace.root / "kiln-out" / link).symlink_to(victim)
    line = one_line_error(workspace.kiln("build", "//p:a"))
    assert f"kiln-out/{link} is a symlink" in line
    assert victim.read_text() == "keep me" if link == ".lock" else not any(victim.iterdir())


def test_unknown_model_precision(workspace):
    workspace.write("p/m.onnx", "")
    workspace.write("p/BUILD.kiln", 'model(name = "m", graph = "m.onnx", precision = "bf16")\n')
    message = one_line_error(workspace.kiln("build", "//p:m"))
    assert "//p:m" in message and "precision must be one of highest, default, got 'bf16'" in message


def test_a_build_file_that_is_not_utf8(workspace):
    (workspace.root / "p").mkdir()
    (workspace.root / "p" / "BUILD.kiln").write_bytes(b'genrule(name = "x",\n outs = ["\x88"], cmd = "true")\n')
    assert one_line_error(workspace.kiln("build", "//p:all")) == "ERROR: p/BUILD.kiln:2: not UTF-8 text (byte 0x88)"
