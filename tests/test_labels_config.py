import pytest

from kiln.build_rules.config import Platform, parse_platforms
from kiln.build_rules.errors import UserError
from kiln.build_rules.labels import Label, parse_label, parse_pattern


def test_label_forms():
    assert parse_label("//mnist:archive") == Label("mnist", "archive")
    assert parse_label(":x", "a/b") == Label("a/b", "x")
    assert parse_label("//a/b") == Label("a/b", "b")
    assert parse_label("file.c", "pkg") == Label("pkg", "file.c")
    assert parse_label("//:root") == Label("", "root")
    assert str(Label("a", "b")) == "//a:b"


@pytest.mark.parametrize("bad", ["//a:", "//a/:b", "//../x:y", "@repo//a:b", "//a:b/../c", "//a b:c"])
def test_bad_labels(bad):
    with pytest.raises(UserError, match="invalid label"):
        parse_label(bad)


def test_patterns():
    every = parse_pattern("//...")
    assert every.recursive and every.matches_package("a/b") and every.matches_package("")
    under = parse_pattern("//a/...")
    assert under.matches_package("a") and under.matches_package("a/b") and not under.matches_package("ab")
    assert parse_pattern("//a:all").name is None and not parse_pattern("//a:all").recursive
    assert parse_pattern("//a:x").name == "x"


def test_platform_flag():
    config = parse_platforms("rocm:gfx942,cuda,linux-arm64")
    assert config.host == "linux-arm64"
    assert config.platforms == (Platform("cpu"), Platform("cuda"), Platform("rocm", "gfx942"))
    assert config.name == "linux-arm64-cpu-cuda-rocm_gfx942"
    assert config.archs("rocm") == ("gfx942",)


def test_platform_default_is_cpu_and_this_host():
    config = parse_platforms(None)
    assert config.platforms == (Platform("cpu"),) and config.host in ("linux-amd64", "linux-arm64")


@pytest.mark.parametrize("flag, message", [
    ("gpu", "unknown platform 'gpu'; valid: cpu, cuda, rocm, tpu"),
    ("linux-amd64,linux-arm64", "give exactly one"),
    ("cpu:x86", "takes no arch qualifier"),
])
def test_platform_errors(flag, message):
    with pytest.raises(UserError, match=message):
        parse_platforms(flag)
