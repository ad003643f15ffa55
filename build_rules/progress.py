"""The one-line progress display (`[3/7] Compiling //mnist:mnist (cpu) 2.1s`) and build messages."""

from __future__ import annotations

import shlex
import sys
import threading
import time

from kiln.build_rules.actions import Action
from kiln.build_rules.runners import Failure


class Progress:
    """On a terminal a live line via rich; otherwise one plain line per action that runs."""

    def __init__(self, total: int, quiet: bool = False, remote: bool = False):
        self.total, self.done, self.quiet = total, 0, quiet
        self.remote = remote  # show how many actions came from the remote and how many ran here
        self.remote_done = self.local_done = 0
        self._running: dict[Action, float] = {}
        self._announced: set[Action] = set()
        self._lock = threading.Lock()
        self._live = None
        if sys.stderr.isatty() and not quiet:
            from rich.console import Console
            from rich.live import Live
            self._console = Console(stderr=True)
            self._live = Live(console=self._console, transient=True, refresh_per_second=8)
            self._live.start()

    def started(self, action: Action, when: float) -> None:
        with self._lock:
            self._running[action] = when

    def finished(self, action: Action) -> None:
        with self._lock:
            self._running.pop(action, None)

    def completed(self, cached: bool, remote: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.remote_done += remote
            self.local_done += not (cached or remote)

    def tick(self) -> None:
        line = self._line()
        if self._live is not None and line:
            from rich.text import Text
            self._live.update(Text(line))
        elif line and not self.quiet:
            self._print_new_starts()

    def _line(self) -> str:
        with self._lock:
            if not self._running:
                return ""
            action, since = min(self._running.items(), key=lambda item: item[1])
        return f"{self._position()} {action.describe()} {time.monotonic() - since:.1f}s"

    def _position(self) -> str:
        where = f", {self.remote_done} remote, {self.local_done} local" if self.remote else ""
        return f"[{self.done}/{self.total}{where}]"

    def _print_new_starts(self) -> None:
        with self._lock:
            fresh = [a for a, t in self._running.items() if a not in self._announced and time.monotonic() - t > 0.5]
            self._announced.update(fresh)
        for action in fresh:
            self.message(f"{self._position()} {action.describe()}")

    def message(self, text: str) -> None:
        if self._live is not None:
            self._console.print(text, highlight=False, markup=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        self.message(f"WARNING: {text}")

    def failed(self, failure: Failure) -> None:
        command = " ".join(shlex.quote(a) for a in failure.command)
        where = f" ({failure.action.location})" if failure.action.location else ""
        lines = [f"ERROR: {failure.action.owner}{where}: {failure.action.describe()} failed: {failure.reason}",
                 f"  command: {command}"]
        if failure.stderr.strip():
            lines.append(failure.stderr.rstrip())
        self.message("\n".join(lines))

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
