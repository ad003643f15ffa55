"""Each layer of the action runner stack alone: the caches and remote layers around an inner runner
that records its calls, the sandbox runner with real processes."""
from __future__ import annotations

import threading
import time

import pytest

from kiln.build_rules.action_inputs import ActionInputs
from kiln.build_rules.actions import Action, Artifact
from kiln.build_rules.errors import ActionFailed
from kiln.build_rules.execution import runner_stack
from kiln.build_rules.labels import Label
from kiln.build_rules.remote import RemoteRun
from kiln.build_rules.runners import (FetchTools, LocalCache, LocalSlots, Outcome, RemoteCache, RemoteExecution,
                                      Request)
from kiln.build_rules.sandbox_runner import SandboxRunner
from kiln.build_rules.store import OutputFile, Store
from kiln.build_rules.workspace import Workspace


def shell_action(script: str, outputs=("out.txt",), inputs=()) -> Action:
    return Action(Label("p", "t"), "Genrule", ("/bin/sh", "-c", script), tuple(inputs),
                  tuple(Artifact(o) for o in outputs))


class Recording:
    """An inner runner that stores `content` as every output and counts its calls."""

    def __init__(self, store: Store, content: bytes = b"made\n", warning: str = "") -> None:
        self.store, self.content, self.warning, self.calls = store, content, warning, 0

    def run(self, request: Request) -> Outcome:
        self.calls += 1
        self.store.root.mkdir(parents=True, exist_ok=True)
        blob = self.store.root / "made"
        blob.write_bytes(self.content)
        digest = self.store.put_file(blob)
        return Outcome({o.path: OutputFile(digest, False) for o in request.action.outputs}, False, self.warning)


class FakeRemote:
    """The Remote interface a layer calls, answering from dictionaries."""

    def __init__(self, cached: dict | None = None, run: RemoteRun | None = None, note: str = "") -> None:
        self.cached, self.remote_run, self.note = cached, run, note
        self.uploads: list[str] = []
        self.executor = object()

    def lookup(self, key, action, store):
        return self.cached, self.note

    def upload(self, key, action, outputs, store):
        self.uploads.append(key)
        return ""

    def execute(self, action, argv, env, inputs, store):
        return self.remote_run, self.note


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "store")


def request(action: Action | None = None, key: str = "k1") -> Request:
    return Request(action or shell_action("true"), key)


def test_local_cache_runs_once_then_answers_from_the_store(store):
    inner = Recording(store)
    cache = LocalCache(inner, store)
    first, second = cache.run(request()), cache.run(request())
    assert (inner.calls, first.cached, second.cached) == (1, False, True)
    assert second.outputs == first.outputs


def test_local_cache_rebuilds_a_corrupt_entry_and_says_so(store):
    inner = Recording(store)
    cache = LocalCache(inner, store)
    blob = store.blob_path(cache.run(request()).outputs["out.txt"].digest)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered\n")
    again = cache.run(request())
    assert inner.calls == 2 and not again.cached
    assert "was corrupted (digest mismatch); rebuilding" in again.warning


def test_local_cache_keys_by_request_key(store):
    inner = Recording(store)
    cache = LocalCache(inner, store)
    cache.run(request(key="a"))
    cache.run(request(key="b"))
    assert inner.calls == 2


def test_remote_cache_hit_skips_the_inner_runner(store):
    hit = {"out.txt": OutputFile("0" * 64, False)}
    inner = Recording(store)
    outcome = RemoteCache(inner, FakeRemote(cached=hit, note="slow remote"), store).run(request())
    assert inner.calls == 0
    assert (outcome.outputs, outcome.cached, outcome.remote, outcome.warning) == (hit, True, True, "slow remote")


def test_remote_cache_miss_runs_inner_and_uploads(store):
    remote = FakeRemote(note="lookup note")
    outcome = RemoteCache(Recording(store, warning="inner note"), remote, store).run(request(key="k9"))
    assert remote.uploads == ["k9"]
    assert outcome.warning == "lookup note; inner note" and not outcome.remote


def test_remote_execution_falls_back_to_the_inner_runner_with_its_warning(store):
    inner = Recording(store)
    remote = FakeRemote(run=None, note="remote executor unreachable; running locally")
    outcome = RemoteExecution(inner, remote, ActionInputs(Workspace(store.root), store), store).run(request())
    assert inner.calls == 1 and not outcome.remote
    assert outcome.warning == "remote executor unreachable; running locally"


def test_remote_execution_failure_and_missing_output_are_action_failures(store):
    inputs = ActionInputs(Workspace(store.root), store)
    failed = FakeRemote(run=RemoteRun(3, "boom", {}, False))
    with pytest.raises(ActionFailed) as error:
        RemoteExecution(Recording(store), failed, inputs, store).run(request())
    assert error.value.args[0].reason == "exit code 3 (remote)"
    empty = FakeRemote(run=RemoteRun(0, "", {}, False))
    with pytest.raises(ActionFailed) as error:
        RemoteExecution(Recording(store), empty, inputs, store).run(request())
    assert error.value.args[0].reason == "it did not create the declared output out.txt"


def test_local_slots_bound_concurrent_runs(store):
    running, peak, lock = [0], [0], threading.Lock()

    class Slow:
        def run(self, request):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return Outcome({}, False)

    slots = LocalSlots(Slow(), 2)
    threads = [threading.Thread(target=slots.run, args=(request(),)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


def test_fetch_tools_passes_through_when_nothing_to_fetch(store):
    inner = Recording(store)
    FetchTools(inner).run(request())
    assert inner.calls == 1


def test_stack_without_remote_is_cache_fetch_local(store):
    inner = Recording(store)
    stack = runner_stack(ActionInputs(Workspace(store.root), store), None, inner)
    assert isinstance(stack, LocalCache) and isinstance(stack.inner, FetchTools) and stack.inner.inner is inner


def test_sandbox_runner_stores_what_a_real_command_writes(store, tmp_path):
    runner = SandboxRunner(ActionInputs(Workspace(tmp_path), store), action_timeout=60)
    outcome = runner.run(request(shell_action("printf hello > out.txt")))
    assert store.blob_path(outcome.outputs["out.txt"].digest).read_bytes() == b"hello"


def test_sandbox_runner_failures_name_the_reason(store, tmp_path):
    runner = SandboxRunner(ActionInputs(Workspace(tmp_path), store), action_timeout=60)
    with pytest.raises(ActionFailed) as error:
        runner.run(request(shell_action("exit 7")))
    assert error.value.args[0].reason == "exit code 7"
    with pytest.raises(ActionFailed) as error:
        runner.run(request(shell_action("true")))
    assert error.value.args[0].reason == "it did not create the declared output out.txt"


def test_sandbox_runner_refuses_an_action_that_edits_its_input(store, tmp_path):
    (tmp_path / "in.txt").write_text("original\n")
    runner = SandboxRunner(ActionInputs(Workspace(tmp_path), store), action_timeout=60)
    action = shell_action("echo more >> in.txt; touch out.txt", inputs=[Artifact("in.txt", source=True)])
    with pytest.raises(ActionFailed) as error:
        runner.run(request(action))
    assert error.value.args[0].reason == "the action modified its input in.txt"
    assert (tmp_path / "in.txt").read_text() == "original\n"
