"""Artifacts, tools and actions: what the analysis phase plans and the execution phase runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from kiln.build_rules.labels import Label

# Bumped whenever the meaning of a cached result changes.
CACHE_FORMAT_VERSION = 1
DEFAULT_ACTION_TIMEOUT = 3600  # seconds; generous: a zoo-sized model's compile takes well under a minute


@dataclass(frozen=True, order=True)
class Artifact:
    """A file, by its path relative to the execution root: `pkg/x.c` or `kiln-out/<cfg>/pkg/x.o`.

    Source files come from the workspace, or from kiln's own installation when `origin` holds
    their absolute path (the launcher's C sources); either way they are keyed by content.
    """

    path: str
    source: bool = False
    origin: str = field(default="", compare=False)
    directory: bool = False  # a tree of files (an OCI layout), stored file by file

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Tool:
    """A hermetic program an action runs; in the key by `digest`, never by where it lives."""

    name: str
    path: str
    digest: str
    mounts: tuple[str, ...] = ()  # directories the sandbox must show read-only for it to run
    env: tuple[tuple[str, str], ...] = ()
    fetch: tuple[str, str, str] | None = None  # a pinned external artifact (name, arch, suite) fetched before use


Arg = str | Tool | Artifact


@dataclass(frozen=True)
class Action:
    owner: Label
    mnemonic: str
    argv: tuple[Arg, ...]
    inputs: tuple[Artifact, ...]
    outputs: tuple[Artifact, ...]
    env: tuple[tuple[str, str], ...] = ()
    tools: tuple[Tool, ...] = ()
    progress: str = field(default="", compare=False)  # kept out of the key
    zig_target: str = ""  # the action runs zig for this target: it gets zig's warmed cache (zig_staging)
    timeout: float = field(default=0, compare=False)  # seconds; 0 = the build's --action_timeout
    location: str = field(default="", compare=False)  # the owner's BUILD file:line, for failure messages

    def key(self, input_digests: dict[str, str]) -> str:
        """sha256 over a canonical encoding of everything that determines the outputs."""
        tools = sorted({t.name: t.digest for t in self.all_tools()}.items())
        encoded = json.dumps({
            "version": CACHE_FORMAT_VERSION,
            "argv": [_encode_arg(a) for a in self.argv],
            "env": sorted(self.env),
            "inputs": sorted((a.path, input_digests[a.path]) for a in self.inputs),
            "outputs": sorted(a.path for a in self.outputs),
            "tools": tools,
        }, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()

    def all_tools(self) -> list[Tool]:
        return [*self.tools, *(a for a in self.argv if isinstance(a, Tool))]

    def describe(self) -> str:
        return self.progress or f"{self.mnemonic} {self.owner}"


def _encode_arg(arg: Arg) -> str:
    if isinstance(arg, Tool):
        return f"<tool:{arg.name}>"
    if isinstance(arg, Artifact):
        return arg.path
    return arg
