"""What the handlers and the reconcilers share, created by the startup handler and kept in
kopf's ``memo`` (no module-level state)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.observability import OperatorMetrics
from agentfleet_operator.render.mesh import MeshConfig
from agentfleet_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from agentfleet_operator.controller.events import EventRecorder
    from agentfleet_operator.controller.queue import WorkQueue

#: ``memo`` key of the :class:`OperatorContext`; ``memo.settings`` may be preset (tests, CLI).
CONTEXT_KEY = "agentfleet"
SETTINGS_KEY = "settings"
#: ``memo`` key of an :class:`OperatorMetrics` to use (main creates it for /metrics).
METRICS_KEY = "metrics"

#: kopf index ids (also the handler kwargs they arrive in).
REFERENCES_INDEX = "agentfleet_references"
MCP_REFERENCES_INDEX = "agentfleet_mcp_references"
BINDINGS_INDEX = "agentfleet_bindings"


@dataclass
class Indexes:
    """kopf's live indexes, captured from the first handler call that receives them (kopf
    hands every handler the same live objects; it runs no handler before they are full)."""

    #: (kind, namespace, name) of a referenced resource → (kind, name) of the referrers:
    #: Agents referencing MCPServers/ResiliencePolicies...
    references: Mapping[Any, Iterable[Any]] | None = None
    #: ...and MCPServers referencing ResiliencePolicies.
    mcp_references: Mapping[Any, Iterable[Any]] | None = None
    #: (namespace, agent name) → SecretBinding bodies naming that Agent.
    bindings: Mapping[Any, Iterable[Any]] | None = None

    def capture(self, kwargs: Mapping[str, Any]) -> None:
        if self.references is None and REFERENCES_INDEX in kwargs:
            self.references = kwargs[REFERENCES_INDEX]
        if self.mcp_references is None and MCP_REFERENCES_INDEX in kwargs:
            self.mcp_references = kwargs[MCP_REFERENCES_INDEX]
        if self.bindings is None and BINDINGS_INDEX in kwargs:
            self.bindings = kwargs[BINDINGS_INDEX]

    def referrers(self, kind: str, namespace: str, name: str) -> list[tuple[str, str]]:
        """(kind, name) of everything in ``namespace`` that references the object."""
        found: set[tuple[str, str]] = set()
        for index in (self.references, self.mcp_references):
            if index is not None:
                found.update((str(k), str(n)) for k, n in index.get((kind, namespace, name), ()))
        return sorted(found)

    def bindings_for(self, namespace: str, agent: str) -> list[dict[str, Any]]:
        if self.bindings is None:
            return []
        return [dict(body) for body in self.bindings.get((namespace, agent), ())]


@dataclass
class OperatorContext:
    settings: OperatorSettings
    kube: KubeClient
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    indexes: Indexes = field(default_factory=Indexes)
    queue: WorkQueue | None = None
    events: EventRecorder | None = None
    #: resourceVersions the operator itself wrote to owned objects, by (kind, ns, name):
    #: the watch echo of our own write is not drift and needs no reconcile.
    written: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: State of optional parts (e.g. the MCP probes), by name.
    extensions: dict[str, Any] = field(default_factory=dict)


def context_from(memo: kopf.Memo) -> OperatorContext:
    context = memo.get(CONTEXT_KEY) if memo is not None else None
    if not isinstance(context, OperatorContext):
        raise RuntimeError("the operator context is missing: did the startup handler run?")
    return context
