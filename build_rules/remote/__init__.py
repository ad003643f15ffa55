"""Sharing builds past one machine: Bazel's remote cache protocols and the Remote Execution API.

The executor talks to one `Remote`: a cache (HTTP or gRPC) and optionally an executor (gRPC). A remote
that fails or cannot be reached is switched off for the rest of the build with one warning, and the
build goes on locally; a cache entry that fails verification is a miss with a warning.
"""

from __future__ import annotations

import threading

from kiln.build_rules.actions import Action
from kiln.build_rules.redact import redact_url
from kiln.build_rules.remote.base import (BadEntry, InputFile, RemoteCache, RemoteError, RemoteExecutor, RemoteOptions,
                                          RemoteRun, RemoteStats)
from kiln.build_rules.store import OutputFile, Store


class Remote:
    """The remote side of one build. Each method returns a warning to show ("" for none)."""

    def __init__(self, options: RemoteOptions, cache: RemoteCache, executor: RemoteExecutor | None,
                 stats: RemoteStats):
        self.options, self.cache, self.executor, self.stats = options, cache, executor, stats
        self._down = False
        self._lock = threading.Lock()

    def lookup(self, key: str, action: Action, store: Store) -> tuple[dict[str, OutputFile] | None, str]:
        if self._down:
            return None, ""
        try:
            outputs = self.cache.lookup(key, action, store)
        except BadEntry as error:
            self.stats.count(misses=1)
            return None, f"remote cache entry of {action.describe()} is unusable ({error}); building it"
        except RemoteError as error:
            return None, self._went_down(self._cache_url, error)
        self.stats.count(**({"hits": 1} if outputs is not None else {"misses": 1}))
        return outputs, ""

    def upload(self, key: str, action: Action, outputs: dict[str, OutputFile], store: Store) -> str:
        if self._down or not self.options.upload_local_results:
            return ""
        try:
            self.cache.upload(key, action, outputs, store)
        except RemoteError as error:
            return self._went_down(self._cache_url, error)
        self.stats.count(uploads=1)
        return ""

    def execute(self, action: Action, argv: list[str], env: dict[str, str], inputs: dict[str, InputFile],
                store: Store) -> tuple[RemoteRun | None, str]:
        if self.executor is None or self._down:
            return None, ""
        try:
            run = self.executor.execute(action, argv, env, inputs, store)
        except (RemoteError, BadEntry) as error:
            return None, self._went_down(self.options.executor, error)
        # The lookup by kiln's key missed; an answer from the server's own cache makes that a hit after all.
        self.stats.count(**({"hits": 1, "misses": -1} if run.cached else {"remote_executions": 1}))
        return run, ""

    @property
    def _cache_url(self) -> str:
        return self.options.cache or self.options.executor

    def _went_down(self, url: str, error: Exception) -> str:
        """Switch the remote off for the rest of the build; only the first failure makes a warning."""
        with self._lock:
            if self._down:
                return ""
            self._down = True
        return f"remote {redact_url(url)} failed: {redact_url(str(error))}; building locally from now on"


def connect(options: RemoteOptions) -> Remote:
    """The remote that `options` name; nothing is contacted until the first action needs it."""
    from kiln.build_rules.remote.cache import ProtocolCache
    from kiln.build_rules.remote.grpc_cas import GrpcCas
    stats = RemoteStats()
    cache_url = options.cache or options.executor
    if cache_url.startswith(("http://", "https://")):
        from kiln.build_rules.remote.http_cache import HttpCache
        transport = HttpCache(cache_url, options.headers, options.timeout, stats)
    else:
        transport = GrpcCas(cache_url, options.instance_name, options.headers, options.timeout, stats)
    executor = None
    if options.executor:
        from kiln.build_rules.remote.grpc_exec import GrpcExecutor
        same = isinstance(transport, GrpcCas) and options.executor == cache_url
        cas = transport if same else GrpcCas(options.executor, options.instance_name, options.headers,
                                              options.timeout, stats)
        executor = GrpcExecutor(cas)
    return Remote(options, ProtocolCache(transport), executor, stats)


