"""One build: load, analyze, execute, report. The CLI's `build` and `run` both go through here."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from kiln.build_rules.analysis import Analyzer
from kiln.build_rules.actions import DEFAULT_ACTION_TIMEOUT, Artifact
from kiln.build_rules.config import Configuration
from kiln.build_rules.execution import Executor
from kiln.build_rules.labels import Label
from kiln.build_rules.loading import Loader
from kiln.build_rules.symlinks import open_no_follow, refuse_symlinks
from kiln.build_rules.progress import Progress
from kiln.build_rules.providers import Providers
from kiln.build_rules.remote import RemoteOptions, RemoteStats, connect
from kiln.build_rules.scheduler import BuildStats, needed_actions, run_actions
from kiln.build_rules.store import Store
from kiln.build_rules.workspace import Workspace


@dataclass
class BuildResult:
    targets: dict[Label, Providers]
    stats: BuildStats
    remote: RemoteStats | None = None

    @property
    def ok(self) -> bool:
        return not self.stats.failures


def build(workspace: Workspace, labels: list[Label], loader: Loader, config: Configuration,
          jobs: int, keep_going: bool = False, quiet: bool = False,
          remote: RemoteOptions = RemoteOptions(), action_timeout: float = DEFAULT_ACTION_TIMEOUT,
          sandbox_debug: bool = False) -> BuildResult:
    started = time.monotonic()
    analyzer = Analyzer(loader)
    targets = {label: analyzer.analyze(label, config) for label in labels}
    paths = [a.path for p in targets.values() for a in _top_level_files(p)]
    actions = needed_actions(analyzer.producers, paths)
    store = Store()
    with workspace_lock(workspace, quiet):
        session = connect(remote) if remote.enabled else None
        progress = Progress(len(actions), quiet, remote.enabled)
        try:
            executor = Executor(workspace, store, session, action_timeout, sandbox_debug)
            stats = run_actions(actions, analyzer.producers, executor, jobs, keep_going, progress)
        finally:
            progress.close()
            store.digests.save()
    result = BuildResult(targets, stats, session.stats if session else None)
    if not quiet:
        _summarize(workspace, result, time.monotonic() - started)
    return result


def _top_level_files(providers: Providers) -> list[Artifact]:
    default = providers.default
    extra = [default.executable] if default.executable else []
    return [*default.files, *extra, *default.runfiles]


def _summarize(workspace: Workspace, result: BuildResult, seconds: float) -> None:
    out = sys.stderr
    for label, providers in result.targets.items():
        files = [f for f in dict.fromkeys(providers.default.files) if not f.source]
        if result.ok and files:
            print(f"Target {label} up-to-date:", file=out)
            for f in files:
                print(f"  {f.path}", file=out)
    for line in _runtime_summaries(workspace, result.stats):
        print(f"INFO: {line}", file=out)
    if result.remote is not None:
        print(f"INFO: {result.remote.summary()}", file=out)
    stats = result.stats
    counts = f"{stats.total} actions ({stats.executed} executed, {stats.cached} cached)"
    if result.ok:
        print(f"INFO: Build completed successfully, {counts} in {seconds:.2f}s", file=out)
    else:
        print(f"ERROR: Build did NOT complete successfully: {len(stats.failures)} failed, {counts}", file=out)


def _runtime_summaries(workspace: Workspace, stats: BuildStats) -> list[str]:
    """One line per trimmed vendor runtime (files and bytes kept, the glibc it needs) and per bundle's weights."""
    reports = sorted({path for entry in stats.log if entry["mnemonic"] == "RuntimeTrim" and entry["status"] != "failed"
                      for path in entry["outputs"] if path.endswith("trim-report.json")})
    weights = sorted({f"{path}/share/weights.json" for entry in stats.log
                      if entry["mnemonic"] == "BundleWeights" and entry["status"] != "failed"
                      for path in entry["outputs"] if path.endswith(".manifests")})
    summaries = [json.loads((workspace.root / path).read_text())["summary"] for path in [*reports, *weights]]
    return [line for line in summaries if line]


@contextmanager
def workspace_lock(workspace: Workspace, quiet: bool = False) -> Iterator[None]:
    """One build at a time per workspace; a second one waits and says so."""
    refuse_symlinks(workspace.output_root)
    workspace.output_root.mkdir(exist_ok=True)
    with open(open_no_follow(workspace.output_root / ".lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"kiln: another kiln build is running in {workspace.root}; waiting for it to finish...",
                  file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
