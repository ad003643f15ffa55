"""Import contracts between kiln's layers (ARCHITECTURE.md), checked over every import statement,
module-level and inside functions, with relative imports resolved; and no import cycles."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("build_rules", "compiler", "toolchain", "runtime_trim")
BACKENDS = ("cpu", "gpu", "stablehlo")

# (importing package, packages it must not import, why)
CONTRACTS = [
    ("kiln.toolchain", ("kiln.build_rules", "kiln.compiler"), "toolchain is below the engine and the compiler"),
    ("kiln.runtime_trim", ("kiln.build_rules", "kiln.compiler"), "runtime_trim is below the engine and the compiler"),
    ("kiln.compiler", ("kiln.build_rules",), "the compiler never imports the build engine"),
    *[(f"kiln.compiler.backend.{b}", tuple(f"kiln.compiler.backend.{o}" for o in BACKENDS if o != b),
       "backends are independent siblings; shared code goes to compiler/backend/llvm") for b in BACKENDS],
    ("kiln.compiler.backend.llvm", tuple(f"kiln.compiler.backend.{b}" for b in BACKENDS),
     "the shared LLVM layer sits below the backends"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["kiln", *parts])


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    parts = module.split(".")
    base = ".".join(parts[:len(parts) - node.level + is_package] + [node.module or ""]) if node.level \
        else node.module or ""
    base = base.rstrip(".")
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return subs or [base]


def imports(module: str, path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module, at module level) for every import statement in the file."""
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend([(child.lineno, t, top) for t in targets(child, module, path.name == "__init__.py")])
            visit(child, top and not runs_later(child))

    visit(ast.parse(path.read_text(), str(path)), True)
    return found


def runs_later(node: ast.AST) -> bool:
    """A function body, or an `if TYPE_CHECKING:` block (never runs): no import-time edge."""
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
        isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("source, forbidden, why", CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_import_contract(source, forbidden, why):
    violations = [f"{path.relative_to(REPO)}:{line}: imports {target}"
                  for module, path in MODULES.items() if within(module, source)
                  for line, target, _ in imports(module, path)
                  if any(within(target, f) for f in forbidden)]
    assert not violations, f"{why}:\n" + "\n".join(violations)


def test_no_import_cycles_at_module_level():
    edges = {m: {t for _, t, top in imports(m, p) if top and t in MODULES and t != m} for m, p in MODULES.items()}
    cycle = next((c for c in map(lambda m: find_cycle(m, edges), sorted(edges)) if c), None)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def find_cycle(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start over module-level imports, or None (depth-first)."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(edges[node]):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_contract_check_sees_relative_and_deferred_imports(tmp_path):
    module = "kiln.compiler.backend.gpu.k_gemm"
    path = tmp_path / "k_gemm.py"
    path.write_text("from ..cpu import codegen\n\ndef f():\n    from ...driver import compile\n")
    assert imports(module, path) == [(1, "kiln.compiler.backend.cpu.codegen", True),
                                     (4, "kiln.compiler.driver", False)]
