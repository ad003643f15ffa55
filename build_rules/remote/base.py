"""What the remote clients and the executor share: options, the cache and executor interfaces, results,
errors and statistics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kiln.build_rules.actions import Action
from kiln.build_rules.store import OutputFile, Store
from kiln.toolchain.fsio import human_bytes


@dataclass(frozen=True)
class RemoteOptions:
    cache: str = ""  # http(s)://host:port[/prefix] or grpc(s)://host:port
    executor: str = ""  # grpc(s)://host:port; also the cache when `cache` is empty
    headers: tuple[tuple[str, str], ...] = ()
    upload_local_results: bool = True
    timeout: float = 60.0
    instance_name: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cache or self.executor)


@dataclass(frozen=True)
class InputFile:
    """An input of a remotely executed action: where its bytes are here, and what they are."""

    local: Path
    digest: str
    executable: bool
    link: str = ""  # the target of a symbolic link (then digest is empty)


@dataclass(frozen=True)
class RemoteRun:
    exit_code: int
    stderr: str
    outputs: dict[str, OutputFile]  # what the action produced, already in the local store
    cached: bool  # the server answered from its action cache


class RemoteCache(Protocol):
    """An action cache plus a content-addressed store somewhere else."""

    def lookup(self, key: str, action: Action, store: Store) -> dict[str, OutputFile] | None:
        """The action's outputs, with every blob downloaded into `store` and its digest verified; None on a miss."""

    def upload(self, key: str, action: Action, outputs: dict[str, OutputFile], store: Store) -> None:
        """Publish a local result: the output blobs first, then the action result."""


class RemoteExecutor(Protocol):
    def execute(self, action: Action, argv: list[str], env: dict[str, str],
                inputs: dict[str, InputFile], store: Store) -> RemoteRun:
        """Run the action remotely; its outputs end up in `store`. Raises RemoteError on failure."""


class RemoteError(Exception):
    """The remote side failed or cannot be reached; one line, the build decides whether to go on."""


class BadEntry(Exception):
    """A cache entry that cannot be used: a blob is missing or has the wrong digest."""


@dataclass
class RemoteStats:
    hits: int = 0
    misses: int = 0
    uploads: int = 0
    remote_executions: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def summary(self) -> str:
        looked_up = self.hits + self.misses
        rate = f" ({100 * self.hits / looked_up:.0f}% hit rate)" if looked_up else ""
        return (f"remote cache: {self.hits} hits, {self.misses} misses{rate}, {self.uploads} uploads; "
                f"{self.remote_executions} executed remotely; "
                f"{human_bytes(self.bytes_down)} down, {human_bytes(self.bytes_up)} up")
