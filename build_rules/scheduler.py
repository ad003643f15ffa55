"""Run the actions a build needs, in dependency order, on `--jobs` threads, with a progress line."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from kiln.build_rules.actions import Action
from kiln.build_rules.errors import ActionFailed
from kiln.build_rules.execution import Executor
from kiln.build_rules.runners import Failure
from kiln.build_rules.progress import Progress


@dataclass
class BuildStats:
    total: int = 0
    executed: int = 0
    cached: int = 0
    failures: list[Failure] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)  # one entry per finished action, for --execution_log
    warnings: list[str] = field(default_factory=list)


def needed_actions(producers: dict[str, Action], paths: list[str]) -> list[Action]:
    """The actions producing `paths`, and transitively their generated inputs."""
    seen: dict[Action, None] = {}
    stack = [producers[p] for p in paths if p in producers]
    while stack:
        action = stack.pop()
        if action in seen:
            continue
        seen[action] = None
        stack.extend(producers[a.path] for a in action.inputs if not a.source and a.path in producers)
    return list(seen)


def run_actions(actions: list[Action], producers: dict[str, Action], executor: Executor,
                jobs: int, keep_going: bool, progress: Progress) -> BuildStats:
    waiting_on = {a: {producers[i.path] for i in a.inputs if not i.source and i.path in producers} for a in actions}
    dependents: dict[Action, list[Action]] = {a: [] for a in actions}
    for action, deps in waiting_on.items():
        for dep in deps:
            dependents[dep].append(action)
    stats = BuildStats(total=len(actions))
    ready = sorted((a for a, d in waiting_on.items() if not d), key=lambda a: a.describe())
    running: dict[Future, Action] = {}
    stopped = False
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while ready or running:
            while ready and not stopped:
                action = ready.pop(0)
                running[pool.submit(_execute, executor, action, progress)] = action
            if not running:
                break
            done, _ = wait(running, timeout=0.1, return_when=FIRST_COMPLETED)
            progress.tick()
            for future in done:
                action = running.pop(future)
                if _record(action, future, stats, progress):
                    for dependent in dependents[action]:
                        waiting_on[dependent].discard(action)
                        if not waiting_on[dependent]:
                            ready.append(dependent)
                elif not keep_going:
                    stopped = True
    return stats


def _execute(executor: Executor, action: Action, progress: Progress):
    started = time.monotonic()
    progress.started(action, started)
    try:
        return executor.execute(action)
    finally:
        progress.finished(action)


def _record(action: Action, future: Future, stats: BuildStats, progress: Progress) -> bool:
    entry = {"target": str(action.owner), "mnemonic": action.mnemonic, "outputs": [o.path for o in action.outputs]}
    try:
        outcome = future.result()
    except ActionFailed as failed:
        stats.failures.append(failed.args[0])
        stats.log.append({**entry, "status": "failed"})
        progress.failed(failed.args[0])
        return False
    stats.log.append({**entry, "status": "cached" if outcome.cached else "executed", "remote": outcome.remote})
    if outcome.warning:
        stats.warnings.append(outcome.warning)
        progress.warn(outcome.warning)
    if outcome.cached:
        stats.cached += 1
    else:
        stats.executed += 1
    progress.completed(outcome.cached, outcome.remote)
    return True
