"""The zig-built `executable` rule, `kiln run`, reproducibility, and `kiln query`."""

import hashlib
import shutil
import subprocess

import pytest

HELLO_BUILD = """
genrule(name = "header", outs = ["greeting.h"], cmd = "echo '#define GREETING \\"Hi\\"' > $@")
executable(name = "hello", srcs = ["hello.c", ":header"], copts = ["-std=c11", "-Wall"])
genrule(name = "used", outs = ["used.txt"], cmd = "$(location :hello) tool > $@", tools = [":hello"])
"""
HELLO_C = """#include <stdio.h>
#include "greeting.h"
int main(int argc, char **argv) { printf("%s %s\\n", GREETING, argc > 1 ? argv[1] : "world"); return argc > 2; }
"""


@pytest.fixture
def hello(workspace):
    workspace.write("h/BUILD.kiln", HELLO_BUILD)
    workspace.write("h/hello.c", HELLO_C)
    return workspace


def test_executable_builds_and_runs_as_tool(hello):
    hello.kiln("build", "//h:all", check=True)
    assert hello.out("h/used.txt").read_text() == "Hi tool\n"


def test_kiln_run_passes_args_and_exit_code(hello):
    done = hello.kiln("run", "//h:hello", "--", "there")
    assert done.returncode == 0 and done.stdout == "Hi there\n"
    assert hello.kiln("run", "//h:hello", "--", "a", "b").returncode == 1


def test_run_target_that_is_not_executable(hello):
    done = hello.kiln("run", "//h:header")
    assert done.returncode == 1 and "is not executable" in done.stderr


def test_cross_compiles_for_arm64(hello):
    hello.kiln("build", "--platform=linux-arm64", "//h:hello", check=True)
    elf = hello.out("h/hello", "linux-arm64-cpu").read_bytes()
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64


@pytest.mark.e2e
def test_clean_builds_are_byte_identical(hello, tmp_path):
    digests = []
    for attempt in range(2):
        cache = tmp_path / f"cache{attempt}"
        hello.kiln("clean", cache=cache, check=True)
        hello.kiln("build", "//h:hello", cache=cache, check=True)
        digests.append(hashlib.sha256(hello.out("h/hello").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_compile_error_shows_compiler_output(hello):
    hello.write("h/hello.c", "int main(void) { return undefined_symbol; }\n")
    done = hello.kiln("build", "//h:hello")
    assert done.returncode == 1 and "use of undeclared identifier 'undefined_symbol'" in done.stderr


def test_query_deps_and_rdeps(hello):
    deps = hello.kiln("query", "deps(//h:used)", check=True).stdout.split()
    assert deps == ["//h:header", "//h:hello", "//h:hello.c", "//h:used"]
    rdeps = hello.kiln("query", "rdeps(//..., //h:header)", check=True).stdout.split()
    assert rdeps == ["//h:header", "//h:hello", "//h:used"]


def test_query_somepath_graph(hello):
    dot = hello.kiln("query", "somepath(//h:used, //h:header)", "--output=graph", check=True).stdout
    assert '"//h:used" -> "//h:hello";' in dot and '"//h:hello" -> "//h:header";' in dot
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=dot, text=True, check=True, capture_output=True)


def test_query_bad_expression(hello):
    done = hello.kiln("query", "allpaths(//h:used)")
    assert done.returncode == 1 and "cannot evaluate" in done.stderr
