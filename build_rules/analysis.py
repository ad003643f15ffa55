"""The analysis phase: configured targets run their rule implementations and declare actions.

Analysis plans; it never runs a tool, touches the network or writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from kiln.build_rules.actions import Action, Arg, Artifact, Tool
from kiln.build_rules.attrs import label_values
from kiln.build_rules.config import Configuration, exec_configuration
from kiln.build_rules.errors import UserError
from kiln.build_rules.labels import Label
from kiln.build_rules.targets import Target
from kiln.build_rules.providers import DefaultInfo, Providers
from kiln.build_rules.workspace import OUTPUT_DIR, Workspace


class TargetSource(Protocol):
    """The loading phase as analysis sees it (loading.Loader)."""
    workspace: Workspace

    def target(self, label: Label) -> Target | None: ...

    def suggestion(self, label: Label) -> str: ...


@dataclass(frozen=True)
class Dep:
    label: Label
    providers: Providers

    @property
    def files(self) -> tuple[Artifact, ...]:
        return self.providers.default.files

    @property
    def executable(self) -> Artifact | None:
        return self.providers.default.executable

    def get(self, kind: type) -> Any:
        return self.providers.get(kind)


class RuleContext:
    """What a rule implementation sees: its attributes, its deps' providers, the configuration."""

    def __init__(self, analyzer: "Analyzer", target: Target, config: Configuration, attr: dict[str, Any]):
        self._analyzer, self.target, self.config, self.attr = analyzer, target, config, attr
        self.label = target.label
        self.outputs: list[Artifact] = []

    def declare_file(self, name: str, directory: bool = False) -> Artifact:
        parts = [OUTPUT_DIR, self.config.name, self.label.package, name]
        artifact = Artifact("/".join(p for p in parts if p), directory=directory)
        self.outputs.append(artifact)
        return artifact

    def declare_directory(self, name: str) -> Artifact:
        return self.declare_file(name, directory=True)

    def action(self, mnemonic: str, argv: list[Arg], inputs: list[Artifact], outputs: list[Artifact],
               env: dict[str, str] | None = None, tools: list[Tool] | None = None, progress: str = "",
               zig_target: str = "") -> Action:
        undeclared = [o.path for o in outputs if o not in self.outputs]
        if undeclared:
            raise UserError(f"{self.label}: action output {undeclared[0]} was not declared by this target")
        action = Action(self.label, mnemonic, tuple(argv), tuple(sorted(set(inputs))), tuple(outputs),
                        tuple(sorted((env or {}).items())), tuple(tools or ()),
                        progress or f"{mnemonic} {self.label}", zig_target, self.attr.get("timeout") or 0,
                        str(self.target.location))
        self._analyzer.register(action)
        return action

    def dep_for_host(self, attribute: str, host: str) -> Dep:
        """The target in a label attribute, analyzed for `host` instead (multi-arch images)."""
        label = self.attr[attribute].label
        config = Configuration(self.config.platforms, host)
        return Dep(label, self._analyzer.analyze(label, config, f"{attribute} of {self.label}"))

    def fail(self, message: str) -> UserError:
        return UserError(f"{self.label} ({self.target.location}): {message}")


class Analyzer:
    def __init__(self, loader: TargetSource):
        self.loader = loader
        self.configured: dict[tuple[Label, Configuration], Providers] = {}
        self.producers: dict[str, Action] = {}
        self._stack: list[tuple[Label, Configuration]] = []

    @property
    def actions(self) -> list[Action]:
        return list(dict.fromkeys(self.producers.values()))

    def register(self, action: Action) -> None:
        for output in action.outputs:
            other = self.producers.get(output.path)
            if other is not None and other != action:
                raise UserError(f"output conflict: {output.path} is produced by both {other.owner} and {action.owner}")
            self._check_prefix(output.path, action)
            self.producers[output.path] = action

    def _check_prefix(self, path: str, action: Action) -> None:
        """No output may lie inside another output (a path cannot be a file and a directory)."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            holder = self.producers.get("/".join(parts[:depth]))
            if holder is not None:
                raise UserError(f"output conflict: {holder.owner} writes {'/'.join(parts[:depth])}, "
                                f"which {action.owner} needs as the directory of {path}")
        prefix = path + "/"
        clash = next((p for p in self.producers if p.startswith(prefix)), None)
        if clash is not None:
            raise UserError(f"output conflict: {action.owner} writes {path}, which "
                            f"{self.producers[clash].owner} needs as the directory of {clash}")

    def analyze(self, label: Label, config: Configuration, needed_by: str = "") -> Providers:
        key = (label, config)
        if key in self.configured:
            return self.configured[key]
        if key in self._stack:
            cycle = [str(l) for l, _ in self._stack[self._stack.index(key):]] + [str(label)]
            raise UserError(f"dependency cycle: {' -> '.join(cycle)}")
        target = self.loader.target(label)
        if target is None:
            providers = self._source_file(label, needed_by)
        else:
            self._stack.append(key)
            try:
                providers = self._run_rule(target, config)
            finally:
                self._stack.pop()
        self.configured[key] = providers
        return providers

    def _run_rule(self, target: Target, config: Configuration) -> Providers:
        attr = {}
        for key, value in target.attrs.items():
            labels = label_values(value)
            if not labels:
                attr[key] = value
                continue
            spec = target.rule.attrs.get(key)
            dep_config = exec_configuration() if spec and spec.executable_config else config
            deps = tuple(Dep(l, self.analyze(l, dep_config, f"{key} of {target.label}")) for l in labels)
            attr[key] = deps if isinstance(value, tuple) else deps[0]
        return target.rule.implementation(RuleContext(self, target, config, attr))

    def _source_file(self, label: Label, needed_by: str) -> Providers:
        path = self.loader.workspace.root / label.package / label.name
        if path.is_file():
            relative = f"{label.package}/{label.name}" if label.package else label.name
            return Providers(DefaultInfo(files=(Artifact(relative, source=True),)))
        hint = self.loader.suggestion(label)
        where = f" (referenced in {needed_by})" if needed_by else ""
        raise UserError(f"no such target '{label}'{where}: not a rule in "
                        f"{self.loader.workspace.build_file(label.package).name} and not a file{hint}")
