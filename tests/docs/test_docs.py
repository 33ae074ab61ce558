"""The architecture plan in docs/ stays true to the code.

Facts that can drift are generated (``scripts/gen_docs.py``) or checked here: the
reference pages are fresh, relative links and anchors resolve, metric names and endpoint
paths named anywhere in docs/ exist, every diagram kind the plan promises is there, and
every alert has a runbook section. That the diagrams *render* is ``scripts/check-mermaid``'s
job (it needs Chromium; CI runs it).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if not {"node_modules", "tools"} & set(p.parts))
ALERT_FILES = [
    ROOT / "deploy" / "prometheus" / "alerts.yaml",
    ROOT / "charts" / "agentfleet" / "files" / "prometheus" / "operator-alerts.yaml",
]
RUNBOOKS = DOCS / "runbooks.md"

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
MERMAID = re.compile(r"^```mermaid\n(.*?)^```", re.S | re.M)
METRIC = re.compile(r"\bagentfleet_[a-z0-9_]+")
ENDPOINT = re.compile(r"(?<![\w.])(/api/v1(?:/[A-Za-z0-9_{}.-]+)*|/healthz/[a-z]+)")

#: ``agentfleet_*`` words in docs/ that are not metrics: import packages and kopf index
#: names. Anything else that looks like a metric must be in docs/reference/metrics.md.
NOT_METRICS = {
    "agentfleet_crds",
    "agentfleet_runtime",
    "agentfleet_operator",
    "agentfleet_references",
    "agentfleet_mcp_references",
    "agentfleet_bindings",
}
#: The diagram kinds the plan promises (issue #8), by their Mermaid keyword.
DIAGRAM_KINDS = {
    "erDiagram": "ER diagram (domain model)",
    "stateDiagram": "state diagram (resilience)",
    "sequenceDiagram": "sequence diagram (API, integrations)",
    "flowchart": "flowchart (configuration, decisions)",
    "gitGraph": "gitGraph (branching and releases)",
    "timeline": "timeline (roadmap)",
    "architecture-beta": "architecture / service topology graph",
}


def _load_gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_docs", module)
    spec.loader.exec_module(module)
    return module


@cache
def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _prose(page: Path) -> str:
    """The page without fenced blocks (links in code are not links)."""
    return FENCE.sub("", _text(page))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def _anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, heading in HEADING.findall(_prose(page)):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    anchors |= set(re.findall(r'<a (?:id|name)="([^"]+)"', _text(page)))
    return frozenset(anchors)


# -- generated pages -------------------------------------------------------------------


def test_reference_pages_are_fresh() -> None:
    gen_docs = _load_gen_docs()
    stale = gen_docs._write({name: build() for name, build in gen_docs.PAGES.items()}, True)
    assert not stale, (
        f"stale: {[str(p.relative_to(ROOT)) for p in stale]} "
        "(run: uv run python scripts/gen_docs.py)"
    )


def test_every_direct_dependency_says_why() -> None:
    text = _text(DOCS / "reference" / "dependencies.md")
    missing = [row for row in text.splitlines() if row.startswith("| `") and "| — |" in row]
    assert not missing, "add to RATIONALE in scripts/gen_docs.py:\n" + "\n".join(missing)


# -- links -----------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(INLINE_CODE.sub("", _prose(page))):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no such anchor)")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


# -- metric names and endpoints ----------------------------------------------------------


@cache
def _metric_names() -> frozenset[str]:
    text = _text(DOCS / "reference" / "metrics.md")
    return frozenset(re.findall(r"^\| `(agentfleet_[a-z0-9_]+)`", text, re.M))


def test_metrics_reference_is_not_empty() -> None:
    assert len(_metric_names()) > 30
    assert "agentfleet_operator_leader" in _metric_names()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_metric_names_exist(page: Path) -> None:
    known = _metric_names()
    unknown = set()
    for name in METRIC.findall(_text(page)):
        if name in NOT_METRICS:
            continue
        base = re.sub(r"_(bucket|sum|count|created)$", "", name)
        if name.endswith("_"):  # a prefix such as agentfleet_secret_*
            if not any(m.startswith(name) for m in known):
                unknown.add(name)
        elif base not in known and name not in known:
            unknown.add(name)
    assert not unknown, f"{page.relative_to(ROOT)} names metrics that do not exist: {unknown}"


@cache
def _routes() -> tuple[tuple[str, ...], ...]:
    """Every route of the runtime: the OpenAPI document's paths, plus the WebSocket
    routes of ``api/routes/stream.py`` (OpenAPI cannot describe those; the app mounts
    that router under ``API_PREFIX``)."""
    from fastapi.routing import APIWebSocketRoute

    from agentfleet_runtime.api.routes import stream
    from agentfleet_runtime.app import API_PREFIX, create_app
    from agentfleet_runtime.config import RuntimeSettings

    paths = set(create_app(RuntimeSettings()).openapi()["paths"])
    paths |= {API_PREFIX + r.path for r in stream.router.routes if isinstance(r, APIWebSocketRoute)}
    return tuple(tuple(p.strip("/").split("/")) for p in sorted(paths))


def _matches(mentioned: tuple[str, ...], route: tuple[str, ...]) -> bool:
    if len(mentioned) != len(route):
        return False
    for said, real in zip(mentioned, route, strict=True):
        if real.startswith("{"):
            continue  # a route parameter matches a literal ({name} → force-open) or {id}
        if said != real:
            return False
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_endpoint_paths_exist(page: Path) -> None:
    """Every ``/api/v1/...`` or ``/healthz/...`` path named in docs/ is served. Lines
    that say "planned" describe endpoints that do not exist yet and are skipped."""
    routes = _routes()
    unknown = set()
    for line in _text(page).splitlines():
        if "planned" in line.lower():
            continue
        for path in ENDPOINT.findall(line):
            parts = tuple(path.rstrip("/.").strip("/").split("/"))
            if len(parts) < 3 and parts[0] == "api":
                continue  # the prefix itself ("REST under /api/v1")
            if not any(_matches(parts, route) for route in routes):
                unknown.add(path)
    assert not unknown, f"{page.relative_to(ROOT)} names endpoints that do not exist: {unknown}"


# -- diagrams --------------------------------------------------------------------------


def test_every_diagram_kind_is_present() -> None:
    kinds = set()
    for page in PAGES:
        for block in MERMAID.findall(_text(page)):
            first = block.strip().splitlines()[0].split()[0]
            kinds.add(first.removesuffix("-v2"))
    missing = {k: why for k, why in DIAGRAM_KINDS.items() if k not in kinds}
    assert not missing, f"docs/ lacks: {missing}"


def test_no_reserved_words_as_node_ids() -> None:
    """``end``, ``graph``, ``style``... as node ids break or silently change diagrams."""
    reserved = re.compile(r"^\s*(end|graph|style|subgraph|class|click)\s*[\[\(\{>-]", re.M)
    bad = []
    for page in PAGES:
        for block in MERMAID.findall(_text(page)):
            if block.lstrip().startswith(("flowchart", "graph")):
                bad += [f"{page.name}: {m.group(0).strip()}" for m in reserved.finditer(block)]
    assert not bad, bad


# -- the 16 sections and the runbooks -----------------------------------------------------


def test_index_lists_the_sixteen_sections_in_order() -> None:
    rows = re.findall(r"^\| (\d+) \|", _text(DOCS / "index.md"), re.M)
    assert [int(r) for r in rows] == list(range(1, 17))


def _alerts() -> list[dict[str, Any]]:
    rules = []
    for path in ALERT_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules += [r for r in group["rules"] if "alert" in r]
    return rules


def test_every_alert_has_a_runbook_section() -> None:
    alerts = _alerts()
    assert len(alerts) >= 10
    missing = [a["alert"] for a in alerts if _slug(a["alert"]) not in _anchors(RUNBOOKS)]
    assert not missing, f"docs/runbooks.md needs a '## <alert>' section for: {missing}"


def test_runbook_urls_point_to_existing_anchors() -> None:
    for alert in _alerts():
        url = alert.get("annotations", {}).get("runbook_url")
        if url is None:
            continue
        path, _, anchor = str(url).partition("#")
        assert path.endswith("docs/runbooks.md"), (alert["alert"], url)
        assert anchor in _anchors(RUNBOOKS), (alert["alert"], url)
