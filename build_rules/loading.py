"""The loading phase: evaluate BUILD and `.kiln` files (Starlark) into target declarations."""

from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path
from typing import Any, Callable

import starlark as sl

from kiln.build_rules.attrs import check_attrs
from kiln.build_rules.errors import UserError
from kiln.build_rules.labels import Label, parse_label, parse_pattern
from kiln.build_rules.rules import all_rules
from kiln.build_rules.targets import RuleSpec, Target
from kiln.build_rules.workspace import Workspace

_LOCATION = re.compile(r"-->\s*(\S+?):(\d+):(\d+)")


class _PackageBuilder:
    """Receives rule calls while one BUILD file is evaluated."""

    def __init__(self, workspace: Workspace, package: str, build_file: str, source: str):
        self.workspace, self.package, self.build_file = workspace, package, build_file
        self.targets: dict[str, Target] = {}
        self.calls = _calls_by_name(source)

    def rule_function(self, rule: RuleSpec) -> Callable[..., None]:
        def declare(*args: Any, **kwargs: Any) -> None:
            if args:
                raise UserError(f"{rule.name}() takes keyword arguments only")
            attrs = check_attrs(rule.name, rule.attrs, kwargs, self.package)
            if rule.check is not None:
                rule.check(attrs)
            name = attrs["name"]
            if name in self.targets:
                raise UserError(f"duplicate target name '{name}' in package //{self.package}")
            self.targets[name] = Target(Label(self.package, name), rule, attrs, self.build_file,
                                        *self.calls.get(name, (0, 0)))
        declare.__name__ = rule.name
        return declare

    def glob(self, include: list[str], exclude: list[str] | None = None) -> list[str]:
        root = self.workspace.root / self.package
        found: set[str] = set()
        for pattern in include:
            found.update(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file())
        for pattern in exclude or []:
            found.difference_update(p.relative_to(root).as_posix() for p in root.glob(pattern))
        return sorted(f for f in found if not f.startswith("kiln-out/"))


class Loader:
    """Evaluates BUILD files on demand; `.kiln` extension files are evaluated once and shared."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._packages: dict[str, dict[str, Target]] = {}
        self._extensions: dict[str, sl.FrozenModule] = {}
        self._loading: list[str] = []  # the chain of .kiln files being evaluated, for cycles
        self._current: _PackageBuilder | None = None
        self._dialect = sl.Dialect.extended()

    def package(self, package: str) -> dict[str, Target]:
        if package not in self._packages:
            self._packages[package] = self._evaluate_build_file(package)
        return self._packages[package]

    def target(self, label: Label) -> Target | None:
        return self.package(label.package).get(label.name)

    def expand(self, patterns: list[str], package: str = "") -> list[Label]:
        """Targets named by `//pkg:name`, `:name`, `//pkg:all`, `//pkg/...`, in order, without repeats."""
        labels: dict[Label, None] = {}
        for text in patterns:
            pattern = parse_pattern(f"//{package}{text}" if text.startswith(":") else text)
            if pattern.name is not None:
                label = Label(pattern.package, pattern.name)
                if self.target(label) is None:
                    raise UserError(f"no such target '{label}'{self.suggestion(label)}")
                labels[label] = None
                continue
            packages = self.workspace.packages(pattern.package) if pattern.recursive else [pattern.package]
            for pkg in packages:
                if pattern.matches_package(pkg):
                    labels.update((t, None) for t in sorted(t.label for t in self.package(pkg).values()))
        return list(labels)

    def suggestion(self, label: Label) -> str:
        close = difflib.get_close_matches(label.name, list(self.package(label.package)), n=1)
        return f"; did you mean '{Label(label.package, close[0])}'?" if close else ""

    def _evaluate_build_file(self, package: str) -> dict[str, Target]:
        path = self.workspace.build_file(package)
        if path is None:
            raise UserError(f"no such package '//{package}': no BUILD.kiln or BUILD file in "
                            f"{self.workspace.root / package}")
        relative = path.relative_to(self.workspace.root).as_posix()
        source = _source_text(path, relative)
        builder = _PackageBuilder(self.workspace, package, relative, source)
        previous, self._current = self._current, builder
        try:
            self._run(relative, source, package)
        finally:
            self._current = previous
        return builder.targets

    def _run(self, filename: str, source: str, package: str) -> sl.Module:
        module = sl.Module()
        for rule in all_rules().values():
            module.add_callable(rule.name, self._dispatch(rule))
        module.add_callable("glob", lambda include, exclude=None: self._builder().glob(include, exclude))
        module.add_callable("package_name", lambda: self._builder().package)
        try:
            ast = sl.parse(filename, source, self._dialect)
            sl.eval(module, ast, sl.Globals.standard(), sl.FileLoader(lambda p: self._load(p, package)))
        except sl.StarlarkError as error:
            raise UserError(starlark_message(error, filename)) from None
        return module

    def _dispatch(self, rule: RuleSpec) -> Callable[..., None]:
        return lambda *args, **kwargs: self._builder().rule_function(rule)(*args, **kwargs)

    def _builder(self) -> _PackageBuilder:
        if self._current is None:
            raise UserError("rules can only be called while a BUILD file is evaluated")
        return self._current

    def _load(self, text: str, package: str) -> sl.FrozenModule:
        label = parse_label(text, package)
        path = self.workspace.root / label.package / label.name
        if not label.name.endswith(".kiln"):
            raise UserError(f"load('{text}'): only .kiln files can be loaded")
        if not path.is_file():
            raise UserError(f"load('{text}'): file {path} does not exist")
        key = f"{label.package}/{label.name}"
        if str(label) in self._loading:
            chain = self._loading[self._loading.index(str(label)):] + [str(label)]
            raise UserError(f"load cycle: {' -> '.join(chain)}")
        if key not in self._extensions:
            self._loading.append(str(label))
            try:
                self._extensions[key] = self._run(key.lstrip("/"), _source_text(path, key.lstrip("/")), label.package).freeze()
            finally:
                self._loading.pop()
        return self._extensions[key]


def _calls_by_name(source: str) -> dict[str, tuple[int, int]]:
    """Line and column of each call with a literal `name = "..."`, so analysis errors can point at the
    declaration (starlark-rust hands callbacks no call site). Starlark BUILD files are Python syntax;
    one that is not just gets no positions."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    calls = {}
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        for keyword in call.keywords:
            value = keyword.value.value if isinstance(keyword.value, ast.Constant) else None
            if keyword.arg == "name" and isinstance(value, str):
                calls.setdefault(value, (call.lineno, call.col_offset + 1))
    return calls


def _source_text(path: Path, shown: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode()
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UserError(f"{shown}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x})") from None


def starlark_message(error: Exception, filename: str) -> str:
    """One line `file:line:col: message` out of starlark-rust's multi-line report."""
    text = str(error)
    messages = [line[len("error: "):] for line in text.splitlines() if line.startswith("error: ")]
    message = messages[-1] if messages else text.strip().splitlines()[0]
    message = message.removeprefix("UserError: ")
    locations = _LOCATION.findall(text)
    where = ":".join(locations[-1]) if locations else filename
    return f"{where}: {message}"
