"""`kiln query`: the target graph (unconfigured), with deps(), rdeps(), somepath() and patterns."""

from __future__ import annotations

import re
from collections import deque

from kiln.build_rules.attrs import label_values
from kiln.build_rules.errors import UserError
from kiln.build_rules.labels import Label, parse_label
from kiln.build_rules.loading import Loader

_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.S)


class TargetGraph:
    """Edges from each target to the labels in its attributes; files are leaves."""

    def __init__(self, loader: Loader):
        self.loader = loader
        self._edges: dict[Label, list[Label]] = {}

    def deps_of(self, label: Label) -> list[Label]:
        if label not in self._edges:
            target = self.loader.target(label)
            if target is None and not (self.loader.workspace.root / label.package / label.name).is_file():
                raise UserError(f"no such target '{label}'")
            values = target.attrs.values() if target else ()
            self._edges[label] = sorted({l for v in values for l in label_values(v)})
        return self._edges[label]

    def closure(self, roots: list[Label]) -> list[Label]:
        seen: dict[Label, None] = {}
        queue = deque(roots)
        while queue:
            label = queue.popleft()
            if label not in seen:
                seen[label] = None
                queue.extend(self.deps_of(label))
        return list(seen)

    def somepath(self, sources: list[Label], targets: set[Label]) -> list[Label]:
        for source in sources:
            parents: dict[Label, Label | None] = {source: None}
            queue = deque([source])
            while queue:
                label = queue.popleft()
                if label in targets:
                    path = [label]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return path[::-1]
                for dep in self.deps_of(label):
                    if dep not in parents:
                        parents[dep] = label
                        queue.append(dep)
        return []


def evaluate(graph: TargetGraph, expression: str, package: str = "") -> tuple[list[Label], list[tuple[Label, Label]]]:
    """Evaluate a query; returns the labels and, for `somepath`, the path's edges."""
    def expand(words: list[str]) -> list[Label]:
        return [label for word in words for label in _expand_word(graph.loader, word, package)]

    call = _CALL.match(expression)
    if not call:
        return sorted(expand([expression])), []
    function, arguments = call.group(1), [a.strip() for a in _split(call.group(2))]
    if function == "deps" and len(arguments) == 1:
        return sorted(graph.closure(expand(arguments))), []
    if function == "rdeps" and len(arguments) == 2:
        universe = graph.closure(expand([arguments[0]]))
        wanted = set(expand([arguments[1]]))
        return sorted(l for l in universe if wanted & set(graph.closure([l]))), []
    if function == "somepath" and len(arguments) == 2:
        path = graph.somepath(expand([arguments[0]]), set(expand([arguments[1]])))
        return path, list(zip(path, path[1:]))
    raise UserError(f"query: cannot evaluate '{expression}': expected a pattern, deps(x), rdeps(universe, x) "
                    f"or somepath(from, to)")


def _expand_word(loader: Loader, word: str, package: str) -> list[Label]:
    """A target pattern, or a source file's label (files are nodes of the graph too)."""
    if not word.endswith(("...", ":all", ":*")):
        label = parse_label(word, package)
        if loader.target(label) is None and (loader.workspace.root / label.package / label.name).is_file():
            return [label]
    return loader.expand([word], package)


def _split(text: str) -> list[str]:
    depth, parts, current = 0, [], ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def to_dot(graph: TargetGraph, labels: list[Label], edges: list[tuple[Label, Label]] | None = None) -> str:
    members = set(labels)
    if edges is None:
        edges = [(l, d) for l in labels for d in graph.deps_of(l) if d in members]
    lines = ["digraph kiln {", "  node [shape=box];"]
    lines += [f'  "{l}";' for l in labels]
    lines += [f'  "{a}" -> "{b}";' for a, b in edges]
    return "\n".join([*lines, "}"])
