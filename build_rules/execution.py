"""Execute one action: action cache -> sandbox -> content-addressed store -> kiln-out."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from kiln.build_rules.actions import DEFAULT_ACTION_TIMEOUT, Action, Artifact, Tool
from kiln.build_rules.errors import ActionFailed
from kiln.build_rules.fsutil import atomic_copy, clone_file
from kiln.build_rules import execroots, sandbox_debug, zig_staging
from kiln.build_rules.remote import InputFile, Remote, RemoteRun
from kiln.build_rules.sandbox import Result, execroot_path, run_sandboxed
from kiln.build_rules.store import OutputFile, Store
from kiln.build_rules.workspace import Workspace
from kiln.toolchain.zig import ToolchainError, zig_cache_dir

ACTION_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC", "SOURCE_DATE_EPOCH": "0", "HOME": "/tmp"}


@dataclass
class Outcome:
    outputs: dict[str, OutputFile]
    cached: bool
    warning: str = ""
    remote: bool = False  # from the remote cache or executed remotely


@dataclass
class Failure:
    action: Action
    command: list[str]
    returncode: int
    stderr: str
    reason: str


class Executor:
    def __init__(self, workspace: Workspace, store: Store, remote: Remote | None = None,
                 action_timeout: float = DEFAULT_ACTION_TIMEOUT, sandbox_debug: bool = False):
        self.workspace, self.store, self.remote = workspace, store, remote
        self.action_timeout, self.sandbox_debug = action_timeout, sandbox_debug
        execroots.remove_stale(self._sandbox_root)
        self.results: dict[str, OutputFile] = {}
        self._lock = threading.Lock()
        # With remote execution --jobs may exceed the cores; actions that fall back to local still get one each.
        remote_jobs = remote is not None and remote.executor is not None
        self._local_slots = threading.Semaphore(os.cpu_count() or 1) if remote_jobs else contextlib.nullcontext()

    def execute(self, action: Action) -> Outcome:
        """Run `action` (or take its cached result); raises ActionFailed carrying a Failure."""
        key = action.key({a.path: self._input_digest(a) for a in action.inputs})
        cached = self.store.get_action(key)
        warning = ""
        if cached is not None and set(cached) == {o.path for o in action.outputs}:
            if all(self.store.verify_output(o) for o in cached.values()):
                self._finish(cached)
                return Outcome(cached, True)
            warning = f"cache entry of {action.describe()} was corrupted (digest mismatch); rebuilding"
        if self.remote is not None:
            outputs, note = self.remote.lookup(key, action, self.store)
            warning = _join(warning, note)
            if outputs is not None:
                self.store.put_action(key, outputs)
                self._finish(outputs)
                return Outcome(outputs, True, warning, remote=True)
        self._fetch_externals(action)
        run, note = self._run_remotely(action)
        warning = _join(warning, note)
        if run is not None:
            outputs = run.outputs
        else:
            with self._local_slots:
                outputs = self._run(action)
        self.store.put_action(key, outputs)
        if self.remote is not None:  # also a remote run's result, so the next lookup by kiln's key finds it
            warning = _join(warning, self.remote.upload(key, action, outputs, self.store))
        self._finish(outputs)
        return Outcome(outputs, bool(run and run.cached), warning, remote=run is not None)

    def _run_remotely(self, action: Action) -> tuple[RemoteRun | None, str]:
        """Run on the remote executor; (None, warning) when there is none or it cannot be used."""
        if self.remote is None or self.remote.executor is None:
            return None, ""
        argv = [a if isinstance(a, str) else a.path for a in action.argv]
        run, warning = self.remote.execute(action, argv, self._env(action), self._remote_inputs(action), self.store)
        if run is None:
            return None, warning
        if run.exit_code != 0:
            raise ActionFailed(Failure(action, argv, run.exit_code, run.stderr, f"exit code {run.exit_code} (remote)"))
        missing = [o.path for o in action.outputs if o.path not in run.outputs]
        if missing:
            raise ActionFailed(Failure(action, argv, 0, run.stderr, f"it did not create the declared output {missing[0]}"))
        return run, warning

    def _remote_inputs(self, action: Action) -> dict[str, InputFile]:
        inputs = {}
        for artifact in action.inputs:
            if artifact.source:
                path = self._source_path(artifact)
                executable = bool(path.stat().st_mode & stat.S_IXUSR)
                inputs[artifact.path] = InputFile(path, self._input_digest(artifact), executable)
                continue
            output = self.results[artifact.path]
            files = self.store.tree_files(output.digest).items() if output.tree else [("", output)]
            for relative, file in files:
                name = f"{artifact.path}/{relative}" if relative else artifact.path
                inputs[name] = InputFile(self.store.blob_path(file.digest), file.digest, file.executable)
        return inputs

    def _env(self, action: Action) -> dict[str, str]:
        return {**ACTION_ENV, **dict(t for tool in action.all_tools() for t in tool.env), **dict(action.env)}

    def _fetch_externals(self, action: Action) -> None:
        for tool in action.all_tools():
            if tool.fetch is not None and not os.path.isdir(tool.path):
                from kiln.toolchain.fetch import FetchError, ensure
                try:
                    ensure(*tool.fetch)
                except FetchError as error:
                    raise ActionFailed(Failure(action, [], 0, "", f"fetching {tool.name}: {error}")) from None

    def _input_digest(self, artifact: Artifact) -> str:
        if artifact.source:
            return self.store.digests.digest(self._source_path(artifact))
        return self.results[artifact.path].digest

    def _source_path(self, artifact: Artifact) -> Path:
        return Path(artifact.origin) if artifact.origin else self.workspace.root / artifact.path

    def _finish(self, outputs: dict[str, OutputFile]) -> None:
        for path, output in outputs.items():
            self._materialize(path, output)
        with self._lock:
            self.results.update(outputs)

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
        self._link_tree(output, fresh)
        stale = target.with_name(f".{target.name}.old.{os.getpid()}")
        if target.exists():
            os.replace(target, stale)
        os.replace(fresh, target)
        shutil.rmtree(stale, ignore_errors=True)
        self.store.digests.record(target, output.digest)

    def _link_tree(self, output: OutputFile, directory: Path) -> None:
        for relative, file in self.store.tree_files(output.digest).items():
            self._place_blob(file, directory / relative)

    def _place_blob(self, output: OutputFile, target: Path) -> None:
        """A blob as an input or a tree's file: a copy, so that neither an action nor a user editing
        kiln-out can write into the store."""
        target.parent.mkdir(parents=True, exist_ok=True)
        clone_file(self.store.blob_path(output.digest), target)
        os.chmod(target, 0o755 if output.executable else 0o644)

    @property
    def _sandbox_root(self) -> Path:
        return self.store.root / "sandbox"

    def _run(self, action: Action) -> dict[str, OutputFile]:
        with execroots.execroot(self._sandbox_root, action.mnemonic) as execroot:
            stamps = self._stage_inputs(action, execroot)
            argv = [self._render(a, execroot) for a in action.argv]
            env = self._env(action)
            mounts = [m for tool in action.all_tools() for m in tool.mounts]
            self._stage_zig_cache(action, execroot)
            timeout = action.timeout or self.action_timeout
            result = run_sandboxed(argv, execroot, env, mounts, timeout)
            if result.returncode != 0 or result.interrupted:
                reason = self._why_failed(action, execroot, result, timeout)
                if self.sandbox_debug and not result.interrupted:
                    script = sandbox_debug.keep(action, execroot, self.store.root / "sandbox-debug", argv, env, mounts)
                    reason += f"; sandbox kept, replay with {script}"
                raise ActionFailed(Failure(action, argv, result.returncode, result.stderr, reason))
            self._check_inputs_untouched(action, execroot, stamps, argv)
            return self._collect_outputs(action, execroot, argv, result.stderr)

    def _why_failed(self, action: Action, execroot: Path, result: Result, timeout: float) -> str:
        if result.interrupted:
            return "interrupted"
        if result.timed_out:
            return (f"timed out after {timeout:g} s (raise it with the target's timeout attribute "
                    "or --action_timeout)")
        return self._undeclared_read(action, execroot, result.stderr) or f"exit code {result.returncode}"

    def _stage_zig_cache(self, action: Action, execroot: Path) -> None:
        if not action.zig_target:
            return
        try:
            zig_staging.stage(Path(zig_cache_dir(self.store.root)), action.zig_target, execroot)
        except ToolchainError as error:
            raise ActionFailed(Failure(action, [], 0, "", str(error))) from None

    def _stage_inputs(self, action: Action, execroot: Path) -> dict[str, tuple[int, int]]:
        stamps = {}
        for artifact in action.inputs:
            target = execroot / artifact.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if artifact.source:
                shutil.copy2(self._source_path(artifact), target)
            elif self.results[artifact.path].tree:
                self._link_tree(self.results[artifact.path], target)
                continue
            else:
                self._place_blob(self.results[artifact.path], target)
            st = target.stat()
            stamps[artifact.path] = (st.st_size, st.st_mtime_ns)
        for artifact in action.outputs:
            (execroot / artifact.path).parent.mkdir(parents=True, exist_ok=True)
            if artifact.directory:
                (execroot / artifact.path).mkdir()
        return stamps

    def _render(self, arg: str | Tool | Artifact, execroot: Path) -> str:
        if isinstance(arg, Tool):
            return arg.path
        if isinstance(arg, Artifact):
            return arg.path
        return arg.replace("$EXECROOT", execroot_path(execroot))

    def _check_inputs_untouched(self, action: Action, execroot: Path, stamps: dict, argv: list[str]) -> None:
        for path, stamp in stamps.items():
            st = (execroot / path).stat()
            if (st.st_size, st.st_mtime_ns) != stamp:
                raise ActionFailed(Failure(action, argv, 0, "", f"the action modified its input {path}"))

    def _collect_outputs(self, action: Action, execroot: Path, argv: list[str], stderr: str) -> dict[str, OutputFile]:
        outputs = {}
        for artifact in action.outputs:
            produced = execroot / artifact.path
            if artifact.directory:
                outputs[artifact.path] = self._collect_tree(action, produced, argv, stderr)
                continue
            if not produced.is_file() or produced.is_symlink():
                raise ActionFailed(Failure(action, argv, 0, stderr, f"it did not create the declared output {artifact.path}"))
            executable = bool(produced.stat().st_mode & stat.S_IXUSR)
            outputs[artifact.path] = OutputFile(self.store.put_file(produced), executable)
        return outputs

    def _collect_tree(self, action: Action, produced: Path, argv: list[str], stderr: str) -> OutputFile:
        if not produced.is_dir() or produced.is_symlink():
            raise ActionFailed(Failure(action, argv, 0, stderr, f"it did not create the declared directory {produced.name}"))
        try:
            return OutputFile(self.store.put_tree(produced), False, tree=True)
        except ValueError as error:
            raise ActionFailed(Failure(action, argv, 0, stderr, f"its output directory holds {error}")) from None

    def _undeclared_read(self, action: Action, execroot: Path, stderr: str) -> str:
        """Name a workspace file the command tried to read that the action does not declare."""
        declared = {a.path for a in action.inputs}
        prefix = execroot_path(execroot) + "/"
        for token in re.findall(r"[\w./+\-]+", stderr):
            relative = token.removeprefix(prefix).removeprefix("./")
            if ".." in relative.split("/"):  # not a workspace path as the action saw it
                continue
            if relative and not relative.startswith("/") and relative not in declared and (self.workspace.root / relative).is_file():
                return (f"it reads '{relative}', which is not a declared input: "
                        f"add it to the srcs (or deps) of {action.owner}")
        return ""


def _join(*warnings: str) -> str:
    return "; ".join(w for w in warnings if w)
