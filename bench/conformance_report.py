"""The conformance report: markdown that people read and tests parse (`parse_cases`)."""
from __future__ import annotations

import re
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import onnx

from conformance_cases import Case

STATUSES = ("pass", "fail", "unsupported", "excluded")
UNSUPPORTED_OP = re.compile(r"unsupported operator (\S+)")
CASE_LINE = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<op>[^|]*) \| (?P<status>\w+) \| (?P<reason>.*) \|$")
RUNNERS = {"cpu": "kiln.compiler.driver.compile for cpu, run in-process by compiler/jit.py's JitModel",
           "gpu": "the GPU kernel description lowered to CPU loops, run by backend/gpu/emulate.py",
           "stablehlo": "the StableHLO program run by kiln's C launcher on XLA's CPU PJRT plugin"}


@dataclass(frozen=True)
class Result:
    case: Case
    status: str
    reason: str = ""


def render(results: list[Result], backend: str, command: str, repo: Path) -> str:
    lines = [f"# ONNX node conformance: kiln {backend}", "",
             f"Regenerate with `{command}` (kiln commit {_commit(repo)}, onnx {onnx.__version__}). "
             f"Cases: onnx's node test generators; runner: {RUNNERS[backend]}, one worker process per core; "
             "outputs compared as onnx's backend runner does (rtol 1e-3, atol 1e-7, NaN where NaN is expected). "
             "kiln compiles for static shapes and build-time weights: a case it refuses because an input must be "
             "known at build time is compiled again with its inputs after the first made initializers, as a "
             "deployed model holds them, and its line says so.",
             ""]
    for section in (_summary, _per_op, _missing_ops, _excluded, _cases):
        lines += section(results) + [""]
    return "\n".join(lines).rstrip() + "\n"


def parse_cases(text: str) -> dict[str, tuple[str, str]]:
    """case name -> (status, reason), from a report's per-case table."""
    return {m["name"]: (m["status"], m["reason"]) for m in map(CASE_LINE.match, text.splitlines()) if m}


def _commit(repo: Path) -> str:
    done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _summary(results: list[Result]) -> list[str]:
    counts = Counter(r.status for r in results)
    considered = len(results) - counts["excluded"]
    rate = 100.0 * counts["pass"] / considered if considered else 0.0
    return ["## Summary", "", "| status | cases |", "|---|---:|",
            *[f"| {s} | {counts[s]} |" for s in STATUSES], f"| total | {len(results)} |", "",
            f"**{rate:.1f}%** of the {considered} non-excluded cases pass."]


def _per_op(results: list[Result]) -> list[str]:
    table: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        if r.status != "excluded":
            table[r.case.op][r.status] += 1
    rows = [f"| {op} | {sum(c.values())} | {c['pass']} | {c['fail']} | {c['unsupported']} |"
            for op, c in sorted(table.items())]
    return ["## Per op (non-excluded cases; function-expanded cases count under the op they expand)", "",
            "| op | cases | pass | fail | unsupported |", "|---|---:|---:|---:|---:|", *rows]


def _missing_ops(results: list[Result]) -> list[str]:
    ops = Counter(m[1] for r in results if r.status == "unsupported" and (m := UNSUPPORTED_OP.search(r.reason)))
    other = sum(1 for r in results if r.status == "unsupported" and not UNSUPPORTED_OP.search(r.reason))
    rows = [f"| {op} | {n} |" for op, n in sorted(ops.items(), key=lambda x: (-x[1], x[0]))]
    return ["## Unsupported operators by cases (the first op kiln refused in each case)", "",
            "| operator | cases |", "|---|---:|", *rows, "",
            f"Unsupported for another reason (dtype, attribute, non-constant weights, ...): {other} cases."]


def _excluded(results: list[Result]) -> list[str]:
    rules = Counter(r.reason for r in results if r.status == "excluded")
    return ["## Excluded by rule", "", "| rule | cases |", "|---|---:|",
            *[f"| {rule} | {n} |" for rule, n in sorted(rules.items())]]


def _cases(results: list[Result]) -> list[str]:
    rows = [f"| `{r.case.name}` | {r.case.op} | {r.status} | {_escape(r.reason)} |"
            for r in sorted(results, key=lambda r: r.case.name)]
    return ["## Cases", "", "| case | op | status | reason |", "|---|---|---|---|", *rows]
