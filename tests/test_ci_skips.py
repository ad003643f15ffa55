"""Under CI=true a skip for a missing tool fails; a skip for missing hardware stays a skip."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CASES = '''
import pytest
from tool_skips import needs_tool, require_tool

@needs_tool("frobnicator", False)
def test_marked():
    pass

def test_inline():
    require_tool("frobnicator", False)

@pytest.mark.skipif(True, reason="needs a GPU")
def test_hardware():
    pass
'''


@pytest.mark.parametrize("ci, expected", [("true", "1 failed, 1 skipped, 1 error"), ("", "3 skipped")])
def test_missing_tool_skips_fail_only_in_ci(tmp_path, ci, expected):
    (tmp_path / "test_cases.py").write_text(CASES)
    (tmp_path / "ci_plugin.py").write_text("from conftest import pytest_make_collect_report, "
                                          "pytest_runtest_makereport  # noqa: F401\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": os.pathsep.join([str(TESTS), str(tmp_path)])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "ci_plugin", "-p", "no:cacheprovider",
                           str(tmp_path / "test_cases.py")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert expected in done.stdout, done.stdout
