"""The layers an action runs through, outermost first:

    LocalCache -> RemoteCache -> FetchTools -> RemoteExecution -> LocalSlots -> SandboxRunner

Each is a Runner that wraps the next one, as Bazel and Pants separate the cache, the strategy and
the process runner; so each layer can be tested around a fake inner runner. Executor (execution.py)
assembles the stack from the options and materializes what it returns."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from dataclasses import dataclass, replace
from typing import Protocol

from kiln.build_rules import zig_staging
from kiln.build_rules.action_inputs import ActionInputs
from kiln.build_rules.actions import Action, Artifact, Tool
from kiln.build_rules.errors import ActionFailed
from kiln.build_rules.remote import Remote
from kiln.build_rules.remote.base import InputFile, RemoteError
from kiln.build_rules.remote.tool_trees import ToolTree, ToolTrees
from kiln.build_rules.store import OutputFile, Store
from kiln.toolchain.fetch import FetchError, ensure
from kiln.toolchain.zig import ToolchainError, zig_cache_dir

ACTION_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC", "SOURCE_DATE_EPOCH": "0", "HOME": "/tmp"}


@dataclass(frozen=True)
class Request:
    action: Action
    key: str  # the action cache key: the action and its inputs' digests


@dataclass
class Outcome:
    outputs: dict[str, OutputFile]
    cached: bool
    warning: str = ""
    remote: bool = False  # from the remote cache or executed remotely

    def after(self, *warnings: str) -> Outcome:
        """This outcome with `warnings` (met by an outer layer first) ahead of its own."""
        return replace(self, warning=join_warnings(*warnings, self.warning))


@dataclass
class Failure:
    action: Action
    command: list[str]
    returncode: int
    stderr: str
    reason: str


class Runner(Protocol):
    def run(self, request: Request) -> Outcome:
        """The action's outputs, stored in the Store; raises ActionFailed carrying a Failure."""


def join_warnings(*warnings: str) -> str:
    return "; ".join(w for w in warnings if w)


def action_env(action: Action) -> dict[str, str]:
    return {**ACTION_ENV, **dict(t for tool in action.all_tools() for t in tool.env), **dict(action.env)}


class LocalCache:
    """The local action cache: a verified hit skips the inner runners; a corrupt entry is rebuilt."""

    def __init__(self, inner: Runner, store: Store) -> None:
        self.inner, self.store = inner, store

    def run(self, request: Request) -> Outcome:
        action, warning = request.action, ""
        cached = self.store.get_action(request.key)
        if cached is not None and set(cached) == {o.path for o in action.outputs}:
            if all(self.store.verify_output(o) for o in cached.values()):
                return Outcome(cached, True)
            warning = f"cache entry of {action.describe()} was corrupted (digest mismatch); rebuilding"
        outcome = self.inner.run(request)
        self.store.put_action(request.key, outcome.outputs)
        return outcome.after(warning)


class RemoteCache:
    """The remote cache: a hit is downloaded into the store; a result made below is uploaded
    (a remote run's too, so the next lookup by kiln's key finds it)."""

    def __init__(self, inner: Runner, remote: Remote, store: Store) -> None:
        self.inner, self.remote, self.store = inner, remote, store

    def run(self, request: Request) -> Outcome:
        outputs, note = self.remote.lookup(request.key, request.action, self.store)
        if outputs is not None:
            return Outcome(outputs, True, note, remote=True)
        outcome = self.inner.run(request)
        uploaded = self.remote.upload(request.key, request.action, outcome.outputs, self.store)
        return replace(outcome, warning=join_warnings(note, outcome.warning, uploaded))


class FetchTools:
    """Fetches the external tools (pinned packages) the action names before anything runs it."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner

    def run(self, request: Request) -> Outcome:
        for tool in request.action.all_tools():
            if tool.fetch is not None and not os.path.isdir(tool.path):
                try:
                    ensure(*tool.fetch)
                except FetchError as error:
                    raise ActionFailed(Failure(request.action, [], 0, "", f"fetching {tool.name}: {error}")) from None
        return self.inner.run(request)


class RemoteExecution:
    """Runs the action on the remote executor, its tools in its input root (remote.tool_trees); falls
    back to the inner runner (with a warning) when the executor cannot take it."""

    def __init__(self, inner: Runner, remote: Remote, inputs: ActionInputs, store: Store) -> None:
        self.inner, self.remote, self.inputs, self.store = inner, remote, inputs, store
        self.tools = ToolTrees(store)

    def run(self, request: Request) -> Outcome:
        action = request.action
        try:
            trees = {tool: self.tools.tree(tool) for tool in action.all_tools()}
        except RemoteError as error:
            return self.inner.run(request).after(f"{action.describe()} runs locally: {error}")
        argv = [_remote_arg(a, trees) for a in action.argv]
        inputs = {**self.inputs.remote_inputs(action), **self._zig_cache(action)}
        for tree in trees.values():
            inputs.update(tree.files)
        run, warning = self.remote.execute(action, argv, action_env(action), inputs, self.store)
        if run is None:
            return self.inner.run(request).after(warning)
        if run.exit_code != 0:
            raise ActionFailed(Failure(action, argv, run.exit_code, run.stderr, f"exit code {run.exit_code} (remote)"))
        missing = [o.path for o in action.outputs if o.path not in run.outputs]
        if missing:
            raise ActionFailed(Failure(action, argv, 0, run.stderr, f"it did not create the declared output {missing[0]}"))
        return Outcome(run.outputs, run.cached, warning, remote=True)

    def _zig_cache(self, action: Action) -> dict[str, InputFile]:
        if not action.zig_target:
            return {}
        try:
            return zig_staging.remote_inputs(Path(zig_cache_dir(self.store.root)), action.zig_target,
                                             self.store.digests)
        except ToolchainError as error:
            raise ActionFailed(Failure(action, [], 0, "", str(error))) from None


def _remote_arg(arg: str | Tool | Artifact, trees: dict[Tool, ToolTree]) -> str:
    if isinstance(arg, Tool):
        return trees[arg].program
    return arg if isinstance(arg, str) else arg.path


class LocalSlots:
    """At most `slots` local runs at once (with remote execution, --jobs may exceed the cores)."""

    def __init__(self, inner: Runner, slots: int) -> None:
        self.inner, self._slots = inner, threading.Semaphore(slots)

    def run(self, request: Request) -> Outcome:
        with self._slots:
            return self.inner.run(request)
