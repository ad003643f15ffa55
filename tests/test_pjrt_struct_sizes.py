"""PJRT forward compatibility on the pinned plugins (XLA's CPU plugin and libtpu, which loads with no
TPU): each function kiln calls, asked with struct_size 1, must not want a larger struct than kiln
builds (compiler/pjrt_struct_check.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from kiln.compiler import pjrt_struct_check
from kiln.toolchain.fetch import ensure
from pjrt_harness import plugin_path


def _plugins() -> dict[str, Path]:
    return {"cpu-xla": plugin_path(), "tpu": ensure("libtpu", "amd64") / "libtpu" / "libtpu.so"}


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return pjrt_struct_check.build_probe(tmp_path_factory.mktemp("pjrt-probe") / "struct_sizes")


@pytest.mark.parametrize("platform", ["cpu-xla", "tpu"])
def test_kiln_struct_sizes_are_at_least_the_plugins(probe, platform):
    assert pjrt_struct_check.problems(probe, _plugins()[platform]) == []


def test_a_plugin_wanting_more_than_kiln_passes_is_a_problem(tmp_path):
    """The parsing, with a stand-in probe that answers as a newer plugin would."""
    fake = tmp_path / "probe"
    fake.write_text("#!/bin/sh\nprintf 'PJRT_Client_Create\\t48\\tUnexpected PJRT_Client_Create_Args size: "
                    "expected 56, got 1\\n'\necho 'Unexpected PJRT_Error_Destroy_Args size: expected 24, got 1' >&2\n"
                    "printf 'PJRT_Error_Destroy\\t16\\t(ok)\\n'\n")
    fake.chmod(0o755)
    found = pjrt_struct_check.problems(fake, tmp_path / "libnewer.so")
    assert found[:2] == ["libnewer.so: PJRT_Client_Create needs 56 bytes, kiln passes 48",
                         "libnewer.so: PJRT_Error_Destroy needs 24 bytes, kiln passes 16"]
    assert all(line.startswith("libnewer.so: the probe never called PJRT_") for line in found[2:])


def test_kiln_lock_update_checks_the_pinned_plugins():
    """`kiln lock --update` runs this check on a new PJRT plugin pin; the current pins pass it."""
    from kiln.build_rules.cli import _check_pjrt_plugins
    from kiln.toolchain.lockfile import load
    lock = load()
    _check_pjrt_plugins([lock.find("libtpu", "amd64"), lock.find("lammps-jax-pjrt-cpu", "amd64")])
