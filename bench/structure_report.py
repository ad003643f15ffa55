"""Structure metrics of a kiln checkout (issue 15's closing note): the largest modules, deferred
(function-level) imports per package, import cycles among kiln modules, and the copies of the
atomic write pattern (temp file + os.replace/Path.replace).

    python bench/structure_report.py [REPO]      # REPO defaults to this checkout
"""
from __future__ import annotations

import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("build_rules", "compiler", "toolchain", "runtime_trim")
TEMP_CALLS = {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory"}
RENAME_CALLS = {"replace", "rename"}


@dataclass(frozen=True)
class Import:
    module: str      # importing module, e.g. kiln.compiler.jit
    target: str      # imported kiln module, or the external top-level name
    line: int
    deferred: bool   # inside a function body


def module_name(repo: Path, path: Path) -> str:
    parts = list(path.relative_to(repo).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["kiln", *parts])


def kiln_modules(repo: Path) -> dict[str, Path]:
    return {module_name(repo, p): p for pkg in PACKAGES for p in sorted((repo / pkg).rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = _resolve(node, module, is_package)
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
    return subs or [base]


def imports(repo: Path, module: str, path: Path, known: set[str]) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _targets(child, module, path.name == "__init__.py", known):
                    found.append(Import(module, target, child.lineno, deferred))
            visit(child, deferred or _runs_later(child))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def _runs_later(node: ast.AST) -> bool:
    """A function body, or an `if TYPE_CHECKING:` block (never runs at import time)."""
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
        isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def atomic_writes(path: Path) -> list[str]:
    """Functions that make a temp file and rename it into place: one copy of the pattern each."""
    hits = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        calls = [c.func for c in ast.walk(fn) if isinstance(c, ast.Call)]
        names = {f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "") for f in calls}
        text = ast.unparse(fn)
        if names & RENAME_CALLS and (names & TEMP_CALLS or "tmp" in text.lower()) and _renames(fn):
            hits.append(f"{fn.name}:{fn.lineno}")
    return hits


def _renames(fn: ast.AST) -> bool:
    """os.replace(a, b) / os.rename(a, b) / path.replace(b) (str.replace takes two arguments)."""
    for call in ast.walk(fn):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in RENAME_CALLS:
            receiver = ast.unparse(call.func.value)
            if receiver == "os" or (receiver not in ("dataclasses", "self") and len(call.args) == 1):
                return True
    return False


def package_of(module: str) -> str:
    return module.split(".")[1]


def report(repo: Path) -> str:
    modules = kiln_modules(repo)
    known = set(modules)
    found = [i for m, p in modules.items() for i in imports(repo, m, p, known)]
    internal = [i for i in found if i.target in known]
    lines = ["## 10 largest modules (lines)"]
    sizes = sorted(((len(p.read_text().splitlines()), m) for m, p in modules.items()), reverse=True)
    lines += [f"{n:6d}  {m}" for n, m in sizes[:10]]
    lines += ["", "## deferred imports (in functions or `if TYPE_CHECKING:`) per package: all / of kiln modules"]
    deferred = Counter(package_of(i.module) for i in found if i.deferred)
    deferred_kiln = Counter(package_of(i.module) for i in internal if i.deferred)
    lines += [f"{pkg:14s} {deferred[pkg]:4d} / {deferred_kiln[pkg]:4d}" for pkg in PACKAGES]
    for title, usable in (("module-level imports", lambda i: not i.deferred), ("all imports", lambda i: True)):
        edges: dict[str, set[str]] = {m: set() for m in modules}
        for i in internal:
            if usable(i) and i.target != i.module:
                edges[i.module].add(i.target)
        found_cycles = cycles(edges)
        lines += ["", f"## import cycles ({title}): {len(found_cycles)}"]
        lines += ["  " + " <-> ".join(c) for c in found_cycles]
    copies = {m: atomic_writes(p) for m, p in modules.items()}
    lines += ["", f"## atomic write pattern (temp + rename): {sum(map(len, copies.values()))} copies"]
    lines += [f"  {m}: {', '.join(fns)}" for m, fns in copies.items() if fns]
    return "\n".join(lines)


def main() -> None:
    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    print(report(repo.resolve()))


if __name__ == "__main__":
    main()
