"""The README's layout table names every module of the package, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_layout_table_matches_the_package():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Package layout") :]
    section = section[: section.index("\n## ", 1)]
    table = "\n".join(line for line in section.splitlines() if line.startswith("| `"))
    listed = set(re.findall(r"`([\w/]+\.py)`", table))
    modules = {
        str(p.relative_to(REPO / "lpips_core"))
        for p in (REPO / "lpips_core").rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py", "version.py")
    }
    assert not listed - modules, f"the README lists modules that do not exist: {sorted(listed - modules)}"
    assert not modules - listed, f"the README's layout table omits: {sorted(modules - listed)}"
