"""docs/deployment.md and docs/production-readiness.md: their links resolve, the
branching strategy has its gitGraph, and every checklist row says where or admits a gap.
(That the diagrams render is scripts/check-mermaid's job.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from delivery_helpers import ROOT

DOCS = [ROOT / "docs" / "deployment.md", ROOT / "docs" / "production-readiness.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve(doc: Path) -> None:
    broken = [
        target
        for target, _ in LINK.findall(doc.read_text(encoding="utf-8"))
        if not target.startswith(("http://", "https://", "mailto:"))
        and not (doc.parent / target).resolve().exists()
    ]
    assert not broken, f"{doc.name} links to missing files: {broken}"


def test_branching_strategy_has_a_git_graph() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert "## Branching and releases" in text
    assert re.search(r"```mermaid\ngitGraph\n", text)


def test_every_readiness_row_has_a_status_and_a_place() -> None:
    rows = [
        line
        for line in (ROOT / "docs" / "production-readiness.md")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.startswith("| ") and not line.startswith(("| item", "| ---"))
    ]
    assert len(rows) >= 30
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3, row
        assert cells[1] in {"✅", "⚠️", "❌"}, row
        assert cells[2], row
