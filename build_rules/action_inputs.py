"""What the actions of one build read: source files and the outputs of earlier actions, by digest."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from kiln.build_rules.actions import Action, Artifact
from kiln.build_rules.fsutil import clone_file
from kiln.build_rules.remote import InputFile
from kiln.build_rules.store import OutputFile, Store
from kiln.build_rules.workspace import Workspace


class ActionInputs:
    def __init__(self, workspace: Workspace, store: Store) -> None:
        self.workspace, self.store = workspace, store
        self.results: dict[str, OutputFile] = {}  # the outputs of the actions run so far, by path
        self._lock = threading.Lock()

    def record(self, outputs: dict[str, OutputFile]) -> None:
        with self._lock:
            self.results.update(outputs)

    def digest(self, artifact: Artifact) -> str:
        if artifact.source:
            return self.store.digests.digest(self.source_path(artifact))
        return self.results[artifact.path].digest

    def source_path(self, artifact: Artifact) -> Path:
        return Path(artifact.origin) if artifact.origin else self.workspace.root / artifact.path

    def remote_inputs(self, action: Action) -> dict[str, InputFile]:
        """The action's input files as a remote executor needs them: trees listed file by file."""
        inputs = {}
        for artifact in action.inputs:
            if artifact.source:
                path = self.source_path(artifact)
                executable = bool(path.stat().st_mode & stat.S_IXUSR)
                inputs[artifact.path] = InputFile(path, self.digest(artifact), executable)
                continue
            output = self.results[artifact.path]
            files = self.store.tree_files(output.digest).items() if output.tree else [("", output)]
            for relative, file in files:
                name = f"{artifact.path}/{relative}" if relative else artifact.path
                inputs[name] = InputFile(self.store.blob_path(file.digest), file.digest, file.executable)
        return inputs

    def place_blob(self, output: OutputFile, target: Path) -> None:
        """A blob as an input or a tree's file: a copy, so that neither an action nor a user editing
        kiln-out can write into the store."""
        target.parent.mkdir(parents=True, exist_ok=True)
        clone_file(self.store.blob_path(output.digest), target)
        os.chmod(target, 0o755 if output.executable else 0o644)

    def place_tree(self, output: OutputFile, directory: Path) -> None:
        for relative, file in self.store.tree_files(output.digest).items():
            self.place_blob(file, directory / relative)
