"""The innermost runner: stage the inputs in a fresh execroot, run the command in the sandbox,
check it left its inputs alone, and store its outputs."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

from kiln.build_rules import execroots, sandbox_debug, zig_staging
from kiln.build_rules.action_inputs import ActionInputs
from kiln.build_rules.actions import Action, Artifact, Tool
from kiln.build_rules.errors import ActionFailed
from kiln.build_rules.runners import Failure, Outcome, Request, action_env
from kiln.build_rules.sandbox import Result, execroot_path, run_sandboxed
from kiln.build_rules.store import OutputFile
from kiln.toolchain.zig import ToolchainError, zig_cache_dir


class SandboxRunner:
    def __init__(self, inputs: ActionInputs, action_timeout: float, sandbox_debug: bool = False) -> None:
        self.inputs, self.store = inputs, inputs.store
        self.action_timeout, self.sandbox_debug = action_timeout, sandbox_debug
        self.root = self.store.root / "sandbox"
        execroots.remove_stale(self.root)

    def run(self, request: Request) -> Outcome:
        action = request.action
        with execroots.execroot(self.root, action.mnemonic) as execroot:
            stamps = self._stage_inputs(action, execroot)
            argv = [_render(a, execroot) for a in action.argv]
            env = action_env(action)
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
            _check_inputs_untouched(action, execroot, stamps, argv)
            return Outcome(self._collect_outputs(action, execroot, argv, result.stderr), False)

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
        """Copies of the inputs in the execroot; returns the (size, mtime) of each file input."""
        stamps = {}
        for artifact in action.inputs:
            target = execroot / artifact.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if artifact.source:
                shutil.copy2(self.inputs.source_path(artifact), target)
            elif self.inputs.results[artifact.path].tree:
                self.inputs.place_tree(self.inputs.results[artifact.path], target)
                continue
            else:
                self.inputs.place_blob(self.inputs.results[artifact.path], target)
            st = target.stat()
            stamps[artifact.path] = (st.st_size, st.st_mtime_ns)
        for artifact in action.outputs:
            (execroot / artifact.path).parent.mkdir(parents=True, exist_ok=True)
            if artifact.directory:
                (execroot / artifact.path).mkdir()
        return stamps

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
        root = self.inputs.workspace.root
        prefix = execroot_path(execroot) + "/"
        for token in re.findall(r"[\w./+\-]+", stderr):
            relative = token.removeprefix(prefix).removeprefix("./")
            if ".." in relative.split("/"):  # not a workspace path as the action saw it
                continue
            if relative and not relative.startswith("/") and relative not in declared and (root / relative).is_file():
                return (f"it reads '{relative}', which is not a declared input: "
                        f"add it to the srcs (or deps) of {action.owner}")
        return ""


def _render(arg: str | Tool | Artifact, execroot: Path) -> str:
    if isinstance(arg, (Tool, Artifact)):
        return arg.path
    return arg.replace("$EXECROOT", execroot_path(execroot))


def _check_inputs_untouched(action: Action, execroot: Path, stamps: dict, argv: list[str]) -> None:
    for path, stamp in stamps.items():
        st = (execroot / path).stat()
        if (st.st_size, st.st_mtime_ns) != stamp:
            raise ActionFailed(Failure(action, argv, 0, "", f"the action modified its input {path}"))
