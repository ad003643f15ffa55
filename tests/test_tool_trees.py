"""Tools as directories of a remote action's input root: layout, the once-per-tree listing, the
remote argv, and a relocatable Python that runs with none of this machine's Python visible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tool_skips import needs_tool

from kiln.build_rules.action_inputs import ActionInputs
from kiln.build_rules.actions import Action, Artifact, Tool
from kiln.build_rules.digests import sha256_file
from kiln.build_rules.labels import Label
from kiln.build_rules.remote import RemoteRun
from kiln.build_rules.remote.tool_trees import ToolTrees
from kiln.build_rules.rules.toolchains import python_tool
from kiln.build_rules.runners import RemoteExecution, Request
from kiln.build_rules.store import OutputFile, Store
from kiln.build_rules.workspace import Workspace
from kiln.toolchain import python

SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "etc")


def tree_tool(root: Path, digest: str = "d" * 64) -> Tool:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "cc").write_text("#!/bin/sh\necho cc\n")
    (root / "bin" / "cc").chmod(0o755)
    (root / "lib").mkdir()
    (root / "lib" / "crt.o").write_bytes(b"\0crt")
    (root / "lib" / "__pycache__").mkdir()
    (root / "lib" / "__pycache__" / "x.pyc").write_bytes(b"stale")
    return Tool("cc:amd64", str(root / "bin" / "cc"), digest, mounts=(str(root),))


def test_a_directory_tool_is_a_content_named_tree_with_its_program_inside(tmp_path):
    tree = ToolTrees(Store(tmp_path / "store")).tree(tree_tool(tmp_path / "cc"))
    assert tree.program == "_tools/cc_amd64-dddddddddddddddd/bin/cc"
    assert sorted(tree.files) == ["_tools/cc_amd64-dddddddddddddddd/bin/cc", "_tools/cc_amd64-dddddddddddddddd/lib/crt.o"]
    cc = tree.files[tree.program]
    assert cc.executable and cc.digest == sha256_file(tmp_path / "cc" / "bin" / "cc")
    assert not tree.files["_tools/cc_amd64-dddddddddddddddd/lib/crt.o"].executable


def test_a_tree_is_hashed_once_and_listed_again_when_a_file_changes_size(tmp_path, monkeypatch):
    store, tool = Store(tmp_path / "store"), tree_tool(tmp_path / "cc")
    ToolTrees(store).tree(tool)
    (listing,) = (store.root / "tool-trees").iterdir()
    hashed = []
    monkeypatch.setattr("kiln.build_rules.remote.tool_trees.sha256_file", lambda p: hashed.append(p) or "0" * 64)
    ToolTrees(store).tree(tool)  # a later build: the listing in the cache, nothing hashed
    assert hashed == [] and set(json.loads(listing.read_bytes())) == {"bin/cc", "lib/crt.o"}
    (tmp_path / "cc" / "lib" / "crt.o").write_bytes(b"\0crt, rebuilt")
    ToolTrees(store).tree(tool)
    assert len(hashed) == 2


def test_remote_execution_names_tools_inside_the_input_root(tmp_path):
    store, tool = Store(tmp_path / "store"), tree_tool(tmp_path / "cc")
    action = Action(Label("p", "t"), "CCompile", (tool, "-c", Artifact("p/a.c", source=True)),
                    (Artifact("p/a.c", source=True),), (Artifact("out.o"),), tools=(tool,))
    (tmp_path / "ws" / "p").mkdir(parents=True)
    (tmp_path / "ws" / "p" / "a.c").write_text("int x;\n")
    store.root.mkdir(parents=True)
    (store.root / "o").write_bytes(b"o")
    seen = {}

    class Executor:
        executor = object()

        def execute(self, action, argv, env, inputs, store):
            seen.update(argv=argv, inputs=inputs)
            return RemoteRun(0, "", {"out.o": OutputFile(store.put_file(store.root / "o"), False)}, False), ""

    inputs = ActionInputs(Workspace(tmp_path / "ws"), store)
    RemoteExecution(None, Executor(), inputs, store).run(Request(action, "k"))
    program = "_tools/cc_amd64-dddddddddddddddd/bin/cc"
    assert seen["argv"] == [program, "-c", "p/a.c"]
    assert {"p/a.c", program, "_tools/cc_amd64-dddddddddddddddd/lib/crt.o"} == set(seen["inputs"])


def test_a_tool_of_several_directories_runs_locally_with_a_warning(tmp_path):
    from test_runners import Recording, request
    store = Store(tmp_path / "store")
    tool = Tool("odd", "/usr/bin/true", "e" * 64, mounts=("/usr/bin", "/usr/lib"))
    action = Action(Label("p", "t"), "Odd", (tool,), (), (Artifact("out.txt"),))
    inner = Recording(store)
    outcome = RemoteExecution(inner, object(), ActionInputs(Workspace(store.root), store), store).run(request(action))
    assert inner.calls == 1 and "odd is not one directory" in outcome.warning


@pytest.mark.e2e
@needs_tool("bwrap", bool(shutil.which("bwrap")))
def test_the_relocatable_python_runs_kilns_code_with_only_system_directories_visible(tmp_path):
    """The Python tree staged elsewhere, under bwrap showing /usr, /lib...: every sys.path entry is in
    the tree, kiln and the pinned distributions import from there, and the libraries the standard
    library links (zlib, libffi, OpenSSL...) load from the tree, not from /usr."""
    store = Store(tmp_path / "store")
    tree = ToolTrees(store).tree(python_tool("kiln.compiler"))
    root = tmp_path / "root"
    for path, file in tree.files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file.local, root / path)
        os.chmod(root / path, 0o755 if file.executable else 0o644)
    script = ("import sys, zlib, ctypes, hashlib, lzma, bz2, numpy, onnx, llvmlite.binding, safetensors, zstandard, "
              "elftools, kiln.compiler; print(*(p for p in sys.path if p), sep='\\n'); print('--'); "
              "print(open('/proc/self/maps').read())")
    bwrap = ["bwrap", "--unshare-all", "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in SYSTEM:
        if os.path.islink(f"/{top}"):
            bwrap += ["--symlink", os.readlink(f"/{top}"), f"/{top}"]
        elif os.path.isdir(f"/{top}"):
            bwrap += ["--ro-bind", f"/{top}", f"/{top}"]
    done = subprocess.run([*bwrap, "--bind", str(root), "/elsewhere", "--chdir", "/elsewhere", tree.program,
                           "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert done.returncode == 0, done.stderr
    paths, maps = done.stdout.split("\n--\n")
    assert paths and all(p.startswith("/elsewhere/_tools/python-") for p in paths.split()), paths
    assert any(p.endswith(f"{python.RELOCATABLE_INTERPRETER.split('/')[1]}/site-packages") for p in paths.split())
    libraries = {line.split()[-1] for line in maps.splitlines() if ".so" in line}
    for name in ("libpython", "libz.so", "libffi.so", "libcrypto.so", "liblzma.so", "libbz2.so"):
        loaded = [p for p in libraries if f"/{name}" in p]
        assert loaded and all(p.startswith("/elsewhere/_tools/python-") for p in loaded), (name, libraries)


def test_a_link_inside_the_tree_stays_a_link_and_one_out_of_it_is_its_file(tmp_path):
    tool = tree_tool(tmp_path / "cc")
    (tmp_path / "cc" / "lib" / "crt1.o").symlink_to("crt.o")
    (tmp_path / "outside.o").write_bytes(b"outside")
    (tmp_path / "cc" / "lib" / "out.o").symlink_to(tmp_path / "outside.o")
    (tmp_path / "cc" / "lib" / "gone.o").symlink_to("/nowhere/gone.o")
    files = ToolTrees(Store(tmp_path / "store")).tree(tool).files
    lib = "_tools/cc_amd64-dddddddddddddddd/lib"
    assert files[f"{lib}/crt1.o"].link == "crt.o" and not files[f"{lib}/crt.o"].link
    assert files[f"{lib}/out.o"].digest == sha256_file(tmp_path / "outside.o") and not files[f"{lib}/out.o"].link
    assert f"{lib}/gone.o" not in files


def test_an_input_root_holds_links_as_symlink_nodes():
    from kiln.build_rules.remote.merkle import FileNode, LinkNode, input_root
    from kiln.build_rules.remote.protos import Directory
    root, blobs = input_root({"lib/libz.so.1": LinkNode("libz.so.1.3"), "lib/libz.so.1.3": FileNode("a" * 64, 3, False)})
    (lib,) = Directory.FromString(blobs[root.hash]).directories
    directory = Directory.FromString(blobs[lib.digest.hash])
    assert [(s.name, s.target) for s in directory.symlinks] == [("libz.so.1", "libz.so.1.3")]
    assert [f.name for f in directory.files] == ["libz.so.1.3"]


def test_a_remote_link_gets_zigs_warmed_cache_as_input_files(tmp_path):
    from kiln.build_rules import zig_staging
    from kiln.build_rules.digests import DigestCache
    shared = tmp_path / "zig-cache"
    (shared / "kiln-warm").mkdir(parents=True)
    (shared / "kiln-warm" / "x86_64-linux-gnu.2.28").touch()  # warmed already: nothing runs zig
    (shared / "o" / "ab").mkdir(parents=True)
    (shared / "o" / "ab" / "crt1.o").write_bytes(b"crt1")
    files = zig_staging.remote_inputs(shared, "x86_64-linux-gnu.2.28", DigestCache(tmp_path / "digests.json"))
    assert list(files) == [".zig-cache/global/o/ab/crt1.o"]
    assert files[".zig-cache/global/o/ab/crt1.o"].digest == sha256_file(shared / "o" / "ab" / "crt1.o")


def test_two_programs_of_one_tree_share_its_files_but_keep_their_paths(tmp_path):
    """The launcher link names civetweb's include dir and its .c: one pinned tree, two tools."""
    include = tree_tool(tmp_path / "src")
    source = Tool("src:all/lib/crt.o", str(tmp_path / "src" / "lib" / "crt.o"), include.digest,
                  mounts=include.mounts)
    include = Tool("src:all/bin", str(tmp_path / "src" / "bin"), include.digest, mounts=include.mounts)
    trees = ToolTrees(Store(tmp_path / "store"))
    first, second = trees.tree(include), trees.tree(source)
    assert first.program == "_tools/src_all-dddddddddddddddd/bin"
    assert second.program == "_tools/src_all-dddddddddddddddd/lib/crt.o"
    assert first.files == second.files


def test_zigs_tree_holds_only_what_kilns_targets_read(tmp_path):
    from kiln.build_rules.rules.toolchains import ZIG_TOOL
    files = ["zig", "lib/std/std.zig", "lib/compiler_rt/os_version_check.zig", "lib/libunwind/src/libunwind.cpp",
             "lib/libc/glibc/abilists", "lib/libc/include/generic-glibc/stdio.h",
             "lib/libc/include/x86-linux-gnu/bits/wordsize.h", "lib/libc/include/aarch64-linux-gnu/bits/endian.h",
             "lib/libc/include/any-linux-any/linux/types.h", "lib/include/stddef.h",
             # never read for x86_64/aarch64 glibc targets:
             "lib/libc/include/any-windows-any/windows.h", "lib/libc/include/mips-linux-gnu/bits/endian.h",
             "lib/libc/mingw/crt/crtdll.c", "lib/libc/musl/src/math/sin.c", "lib/libcxx/include/vector",
             "lib/libtsan/tsan_rtl.cpp", "lib/docs/index.html"]
    for name in files:
        (tmp_path / "zig" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "zig" / name).write_text(name)
    tool = Tool(ZIG_TOOL, str(tmp_path / "zig" / "zig"), "e" * 64, mounts=(str(tmp_path / "zig"),))
    tree = ToolTrees(Store(tmp_path / "store")).tree(tool)
    prefix = "_tools/zig-eeeeeeeeeeeeeeee/"
    assert tree.program == f"{prefix}zig"
    assert sorted(tree.files) == sorted(prefix + name for name in files[:10])
