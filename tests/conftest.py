"""Shared fixtures: a kiln cache per test session, throwaway workspaces, and running the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tool_skips import MISSING_TOOL

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    fail_missing_tool_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    fail_missing_tool_in_ci(outcome.get_result())


def fail_missing_tool_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if os.environ.get("CI") != "true" or not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if MISSING_TOOL in reason:
        report.outcome = "failed"
        report.longrepr = f"CI=true, {reason.removeprefix('Skipped: ')}: .ci/run must install it"


@pytest.fixture(scope="session")
def kiln_cache(tmp_path_factory) -> Path:
    """One XDG cache for the session, so zig's libc build (~4 s per target) is paid once."""
    return tmp_path_factory.mktemp("xdg-cache")


@dataclass
class Workspace:
    root: Path
    cache: Path

    @classmethod
    def empty(cls, root: Path, cache: Path) -> "Workspace":
        """A new workspace at `root` holding only MODULE.kiln."""
        root.mkdir(parents=True)
        (root / "MODULE.kiln").write_text("")
        return cls(root, cache)

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def kiln(self, *args: str, cwd: Path | None = None, cache: Path | None = None,
             env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "XDG_CACHE_HOME": str(cache or self.cache), **(env or {})}
        done = subprocess.run([sys.executable, "-m", "kiln.build_rules", *args], cwd=cwd or self.root,
                              env=full_env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"kiln {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def build_log(self, *args: str, **kwargs) -> list[dict]:
        """Build and return the execution log (one entry per action: executed, cached or failed)."""
        log = self.root.parent / f"{self.root.name}-log.json"
        self.kiln("build", "--execution_log", str(log), *args, check=True, **kwargs)
        return json.loads(log.read_text())

    def out(self, relative: str, config: str = "linux-amd64-cpu") -> Path:
        return self.root / "kiln-out" / config / relative


@pytest.fixture
def workspace(tmp_path, kiln_cache) -> Workspace:
    return Workspace.empty(tmp_path / "ws", kiln_cache)


def executed(log: list[dict]) -> list[str]:
    return sorted(e["target"] for e in log if e["status"] == "executed")
