"""README names every package `.ci/run` installs, so a developer can set up what CI has."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ci_packages() -> set[str]:
    script = (REPO / ".ci" / "run").read_text().replace("\\\n", " ")
    command = re.search(r"apt-get install ([^\n>]*)", script).group(1)
    return {word for word in command.split() if not word.startswith("-")}


def test_readme_lists_every_package_ci_installs():
    readme = (REPO / "README.md").read_text()
    line = re.search(r"CI runs the same command from `\.ci/run`.*?\.\n\n", readme, re.S).group(0)
    missing = {p for p in ci_packages() if p not in line}
    assert ci_packages() and not missing, f"README.md's CI line does not name {sorted(missing)}"
