"""kiln.compiler.launcher: the runtime sources and the zig command that links a launcher."""

from __future__ import annotations

import pytest

from kiln.compiler import launcher


def test_runtime_sources_are_the_c_files_sorted():
    sources = launcher.runtime_sources()
    names = [p.name for p in sources]
    assert names == sorted(names)
    assert {"main.c", "pool.c", "npy.c", "idx.c", "inflate.c", "pgm.c", "safetensors.c", "sha256.c",
            "cpu_features.c"} <= set(names)
    assert all(p.suffix == ".c" and p.is_file() for p in sources)


def test_runtime_files_add_the_headers_including_the_abi():
    names = {p.name for p in launcher.runtime_files()}
    assert "kiln_model.h" in names
    assert {p.name for p in launcher.runtime_sources()} < names


@pytest.mark.parametrize("host, target", [("linux-amd64", "x86_64-linux-gnu.2.28"),
                                          ("linux-arm64", "aarch64-linux-gnu.2.28")])
def test_zig_target(host, target):
    assert launcher.zig_target(host) == target


def test_link_argv_is_deterministic_c11():
    argv = launcher.link_argv("/zig", "linux-arm64", ["model.o"], "out/mnist")
    assert argv[:4] == ["/zig", "cc", "-target", "aarch64-linux-gnu.2.28"]
    for flag in ("-std=c11", "-O2", "-g0", "-Wl,--build-id=none", "-lpthread", "-lm"):
        assert flag in argv
    assert argv[argv.index("-o") + 1] == "out/mnist"
    assert "model.o" in argv
    server = f"{launcher.server_tree()}/{launcher.SERVER_SOURCE}"
    assert [a for a in argv if a.endswith(".c")] == [*(str(p) for p in launcher.runtime_sources()), server]
    assert not any("sanitize" in a for a in argv)


def test_link_flags_take_a_staged_runtime_dir():
    flags = launcher.link_flags("linux-amd64", "_kiln/runtime")
    assert flags[0] == "cc"
    assert flags[flags.index("-I") + 1] == "_kiln/runtime"
    assert "-ffile-prefix-map=_kiln/runtime=kiln/runtime" in flags


def test_sanitize_passes_address_and_undefined_separately():
    """zig cc reads the combined -fsanitize=address,undefined as UBSan alone."""
    flags = launcher.link_flags("linux-amd64", "rt", sanitize=True)
    assert "-fsanitize=address" in flags and "-fsanitize=undefined" in flags
    assert not any("," in f for f in flags if f.startswith("-fsanitize="))
