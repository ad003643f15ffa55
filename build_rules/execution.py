"""Execute one action through the runner stack (runners.py), then materialize its outputs in kiln-out."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from kiln.build_rules.action_inputs import ActionInputs
from kiln.build_rules.actions import DEFAULT_ACTION_TIMEOUT, Action
from kiln.build_rules.fsutil import atomic_copy
from kiln.build_rules.remote import Remote
from kiln.build_rules.runners import (FetchTools, LocalCache, LocalSlots, Outcome, RemoteCache, RemoteExecution,
                                      Request, Runner)
from kiln.build_rules.sandbox_runner import SandboxRunner
from kiln.build_rules.store import OutputFile, Store
from kiln.build_rules.workspace import Workspace


class Executor:
    def __init__(self, workspace: Workspace, store: Store, remote: Remote | None = None,
                 action_timeout: float = DEFAULT_ACTION_TIMEOUT, sandbox_debug: bool = False):
        self.workspace, self.store = workspace, store
        self.inputs = ActionInputs(workspace, store)
        self.runner = runner_stack(self.inputs, remote, SandboxRunner(self.inputs, action_timeout, sandbox_debug))

    def execute(self, action: Action) -> Outcome:
        """Run `action` (or take its cached result); raises ActionFailed carrying a Failure."""
        key = action.key({a.path: self.inputs.digest(a) for a in action.inputs})
        outcome = self.runner.run(Request(action, key))
        for path, output in outcome.outputs.items():
            self._materialize(path, output)
        self.inputs.record(outcome.outputs)
        return outcome

    def _materialize(self, path: str, output: OutputFile) -> None:
        """Copy a blob to kiln-out/ (a copy, so a user editing it cannot corrupt the store)."""
        target = self.workspace.root / path
        if output.tree:
            self._materialize_tree(target, output)
            return
        mode = 0o755 if output.executable else 0o644
        if self.store.digests.known(target) == output.digest and stat.S_IMODE(target.stat().st_mode) == mode:
            return
        atomic_copy(self.store.blob_path(output.digest), target, mode)
        self.store.digests.record(target, output.digest)

    def _materialize_tree(self, target: Path, output: OutputFile) -> None:
        """A directory output: its files are copies (reflinks where the filesystem has them) of the
        store's blobs, so editing kiln-out never changes the store. Built beside the target, then
        swapped in."""
        if self.store.digests.known(target) == output.digest:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        os.chmod(fresh, 0o755)
        self.inputs.place_tree(output, fresh)
        stale = target.with_name(f".{target.name}.old.{os.getpid()}")
        if target.exists():
            os.replace(target, stale)
        os.replace(fresh, target)
        shutil.rmtree(stale, ignore_errors=True)
        self.store.digests.record(target, output.digest)


def runner_stack(inputs: ActionInputs, remote: Remote | None, local: Runner) -> Runner:
    """local cache -> remote cache -> tool fetching -> remote execution -> `local`, leaving out the
    remote layers the options do not ask for."""
    runner = local
    if remote is not None and remote.executor is not None:
        runner = RemoteExecution(LocalSlots(runner, os.cpu_count() or 1), remote, inputs, inputs.store)
    runner = FetchTools(runner)
    if remote is not None:
        runner = RemoteCache(runner, remote, inputs.store)
    return LocalCache(runner, inputs.store)
