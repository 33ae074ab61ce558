"""The service dependency map: every external dependency of a runtime, its health, its
circuit breaker, its recent latency and error rate, and the agents that depend on it —
the input for impact analysis ("if this MCP server goes, which agents degrade?").

:class:`DependencyMapBuilder` first *declares* what the configuration depends on (an
agent's models and fallbacks, its MCP servers, the secret providers its bindings use;
the state backend; the config file), then *observes* what a live process knows: the
resilience pipelines (breaker state, recent calls, see :mod:`..resilience.recent`), the
tool registries' server health, degraded mode, the secret manager, the config watch.
``GET /api/v1/admin/dependencies`` serves the live map; ``agentfleet dependency-map``
renders it as Markdown with a Mermaid graph (:func:`render_markdown`); the reference
page ``docs/reference/dependency-map.md`` is the declared map of ``examples/``.

Health of one dependency, worst first: ``down`` (breaker open or forced open, server
unavailable, state backend in degraded mode, config source unreadable), ``degraded``
(breaker half-open, recent error rate ≥ 50 % over at least 5 calls, a secret served
stale), ``healthy``, ``unknown`` (declared, nothing observed yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from agentfleet_crds.contract import AgentConfig, ResolvedMCPServer
from agentfleet_crds.v1alpha1.agent import ModelProviderName, ModelSpec
from agentfleet_runtime.state.base import utcnow

if TYPE_CHECKING:
    from agentfleet_runtime.resilience.registry import ResilienceRegistry
    from agentfleet_runtime.secrets.manager import SecretManager
    from agentfleet_runtime.state.settings import StateSettings
    from agentfleet_runtime.tools.registry import ToolRegistry

Kind = Literal["model", "mcp-server", "state", "secrets", "config", "storage"]
Health = Literal["healthy", "degraded", "down", "unknown"]

_RANK: Final[dict[str, int]] = {"unknown": 0, "healthy": 1, "degraded": 2, "down": 3}
#: Recent error rate from which a dependency with a closed breaker is ``degraded``.
DEGRADED_ERROR_RATE: Final = 0.5
#: ...over at least this many recent calls.
MIN_CALLS: Final = 5
_DEFAULT_HOSTS: Final = {
    ModelProviderName.ANTHROPIC: "https://api.anthropic.com",
    ModelProviderName.OPENAI: "https://api.openai.com/v1",
}


class Dependency(BaseModel):
    """One external dependency of the runtime."""

    id: str = Field(description="`llm:<provider>/<model>`, `mcp:<server>`, `redis`, ...")
    kind: Kind
    #: Where it is (credentials and query strings removed); ``None`` when not known.
    target: str | None = None
    health: Health = "unknown"
    #: Why it is not healthy (the first reason observed).
    reason: str | None = None
    #: The circuit breaker in front of it (``None``: no pipeline, or none used yet).
    breaker: dict[str, Any] | None = None
    #: Calls in the recent window: count, errors, error rate, p50/p95 latency.
    recent: dict[str, Any] | None = None
    #: The agents that call it (for impact analysis).
    dependents: list[str] = Field(default_factory=list)
    #: Kind-specific facts (a model's role in the fallback chain, a server's tools...).
    detail: dict[str, Any] = Field(default_factory=dict)


class DependencyMap(BaseModel):
    generated_at: datetime = Field(default_factory=utcnow)
    #: The replica that answered (``None`` for a declared map).
    replica: str | None = None
    #: Worst health over the dependencies.
    health: Health = "unknown"
    dependencies: list[Dependency] = Field(default_factory=list)
    #: Agent → the ids of what it depends on.
    agents: dict[str, list[str]] = Field(default_factory=dict)


def redact_url(url: str) -> str:
    """``url`` without user info, query or fragment (they may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def model_id(spec: ModelSpec) -> str:
    """The model's dependency id: its resilience pipeline's name."""
    return f"llm:{spec.provider.value}/{spec.name}"


def model_target(spec: ModelSpec, fake_base_url: str | None = None) -> str | None:
    if spec.base_url:
        return redact_url(spec.base_url)
    if spec.provider is ModelProviderName.FAKE:
        return redact_url(fake_base_url) if fake_base_url else None
    return _DEFAULT_HOSTS.get(spec.provider)


def mcp_target(server: ResolvedMCPServer) -> str | None:
    if server.url:
        return redact_url(server.url)
    if server.command:
        return f"stdio: {server.command}"
    return None


@dataclass
class DependencyMapBuilder:
    """Declare, then observe, then :meth:`build`."""

    fake_base_url: str | None = None
    _deps: dict[str, Dependency] = field(default_factory=dict)
    _agents: dict[str, set[str]] = field(default_factory=dict)

    # -- declared ---------------------------------------------------------------------

    def _declare(self, dep_id: str, kind: Kind, target: str | None, agent: str | None) -> None:
        dep = self._deps.get(dep_id)
        if dep is None:
            dep = self._deps[dep_id] = Dependency(id=dep_id, kind=kind, target=target)
        if agent is not None:
            if agent not in dep.dependents:
                dep.dependents.append(agent)
            self._agents.setdefault(agent, set()).add(dep_id)

    def add_agent(self, config: AgentConfig) -> None:
        """An agent's models (primary, then fallbacks), MCP servers and secret providers."""
        name = config.name
        self._agents.setdefault(name, set())
        for index, spec in enumerate([config.spec.model, *config.spec.fallback_models]):
            dep_id = model_id(spec)
            self._declare(dep_id, "model", model_target(spec, self.fake_base_url), name)
            roles = self._deps[dep_id].detail.setdefault("roles", {})
            roles[name] = "primary" if index == 0 else f"fallback {index}"
        for server in config.mcp_servers:
            self._declare(f"mcp:{server.name}", "mcp-server", mcp_target(server), name)
            self._deps[f"mcp:{server.name}"].detail["transport"] = server.transport.value
        for provider in sorted({secret.provider.value for secret in config.secrets}):
            self._declare(f"secrets:{provider}", "secrets", None, name)

    def add_state(self, settings: StateSettings, agents: Iterable[str] = ()) -> None:
        """The state backend (only Redis is external); every agent depends on it."""
        if settings.backend != "redis":
            return
        sentinels = getattr(settings, "sentinels", None)
        target = (
            "sentinel: " + ", ".join(str(s) for s in sentinels)
            if sentinels
            else redact_url(settings.redis_url)
        )
        self._declare("redis", "state", target, None)
        for agent in agents:
            self._declare("redis", "state", target, agent)

    def add(
        self, dep_id: str, kind: Kind, target: str | None, agents: Iterable[str] = ()
    ) -> Dependency:
        """Any other dependency (the config file, an object store...)."""
        self._declare(dep_id, kind, target, None)
        for agent in agents:
            self._declare(dep_id, kind, target, agent)
        return self._deps[dep_id]

    @classmethod
    def declared(
        cls, configs: Iterable[AgentConfig], state: StateSettings | None = None
    ) -> DependencyMapBuilder:
        """What ``configs`` (and the state backend ``state``) declare, nothing observed."""
        builder = cls()
        agents = list(configs)
        for config in agents:
            builder.add_agent(config)
        if state is not None:
            builder.add_state(state, agents=[config.name for config in agents])
        return builder

    # -- observed ---------------------------------------------------------------------

    def mark(self, dep_id: str, health: Health, reason: str | None = None) -> None:
        """Make ``dep_id`` at least as bad as ``health`` (the worst observation wins)."""
        dep = self._deps.get(dep_id)
        if dep is None:
            return
        if _RANK[health] > _RANK[dep.health]:
            dep.health = health
            if health != "healthy":
                dep.reason = reason
        elif dep.reason is None and health == dep.health and health != "healthy":
            dep.reason = reason

    def observe_pipelines(self, registry: ResilienceRegistry) -> None:
        for pipeline in registry.pipelines():
            dep = self._deps.get(pipeline.name)
            if dep is None:
                continue
            breaker = pipeline.breaker.snapshot()
            recent = pipeline.recent.summary()
            dep.breaker = {
                key: breaker[key]
                for key in ("state", "failures", "failure_threshold", "retry_after_seconds")
            }
            dep.recent = recent.as_dict()
            state = str(breaker["state"])
            if state in ("open", "forced-open"):
                self.mark(pipeline.name, "down", f"circuit breaker {state}")
            elif state == "half-open":
                self.mark(pipeline.name, "degraded", "circuit breaker half-open (probing)")
            elif (
                recent.calls >= MIN_CALLS
                and recent.error_rate is not None
                and recent.error_rate >= DEGRADED_ERROR_RATE
            ):
                self.mark(
                    pipeline.name,
                    "degraded",
                    f"{recent.error_rate:.0%} of {recent.calls} recent calls failed",
                )
            else:
                self.mark(pipeline.name, "healthy")

    def observe_tools(self, agent: str, tools: ToolRegistry) -> None:
        for name, health in tools.health().items():
            dep_id = f"mcp:{name}"
            if dep_id not in self._deps:
                continue
            dep = self._deps[dep_id]
            dep.detail.setdefault("tools", {})[agent] = health.tools
            if health.status == "available":
                self.mark(dep_id, "healthy")
            elif health.status == "unavailable":
                self.mark(dep_id, "down", health.reason or "unavailable")

    def observe_state(self, degraded: bool) -> None:
        if degraded:
            self.mark("redis", "down", "unreachable: serving from memory (degraded mode)")
        else:
            self.mark("redis", "healthy")

    def observe_secrets(self, manager: SecretManager) -> None:
        by_provider: dict[str, list[Any]] = {}
        for status in manager.statuses():
            by_provider.setdefault(status.provider, []).append(status)
        for provider, statuses in by_provider.items():
            dep_id = f"secrets:{provider}"
            if dep_id not in self._deps:
                self.add(dep_id, "secrets", None)
            failing = [s for s in statuses if s.last_error]
            missing = [s.name for s in statuses if s.required and not s.loaded]
            self._deps[dep_id].detail["secrets"] = len(statuses)
            if missing:
                self.mark(dep_id, "down", "required secrets unresolved: " + ", ".join(missing))
            elif any(s.stale for s in statuses) or failing:
                reason = failing[0].last_error if failing else "serving stale values"
                self.mark(dep_id, "degraded", reason)
            else:
                self.mark(dep_id, "healthy")

    # -- result -----------------------------------------------------------------------

    def build(self, replica: str | None = None) -> DependencyMap:
        deps = sorted(self._deps.values(), key=lambda d: (d.kind, d.id))
        for dep in deps:
            dep.dependents.sort()
        worst = max((d.health for d in deps), key=lambda h: _RANK[h], default="unknown")
        return DependencyMap(
            replica=replica,
            health=worst,
            dependencies=deps,
            agents={agent: sorted(ids) for agent, ids in sorted(self._agents.items())},
        )


# -- rendering ------------------------------------------------------------------------

_STYLE: Final = {
    "healthy": "fill:#d7f5dd,stroke:#2e7d32",
    "degraded": "fill:#fff3cd,stroke:#b28704",
    "down": "fill:#f8d7da,stroke:#b71c1c",
    "unknown": "fill:#eceff1,stroke:#607d8b",
}


def _node(index: int, prefix: str) -> str:
    return f"{prefix}{index}"


def _label(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def render_mermaid(deps: DependencyMap) -> str:
    """A flowchart: agents on the left, dependencies on the right, coloured by health."""
    lines = ["flowchart LR"]
    dep_nodes = {dep.id: _node(i, "d") for i, dep in enumerate(deps.dependencies)}
    for i, agent in enumerate(deps.agents):
        lines.append(f'    {_node(i, "a")}(["agent {_label(agent)}"])')
    for dep in deps.dependencies:
        label = f"{_label(dep.id)}<br/>{dep.health}"
        lines.append(f'    {dep_nodes[dep.id]}["{label}"]')
    for i, (_, ids) in enumerate(deps.agents.items()):
        for dep_id in ids:
            lines.append(f"    {_node(i, 'a')} --> {dep_nodes[dep_id]}")
    for health, style in _STYLE.items():
        members = [dep_nodes[d.id] for d in deps.dependencies if d.health == health]
        if members:
            lines.append(f"    classDef {health} {style}")
            lines.append(f"    class {','.join(members)} {health}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(deps: DependencyMap, *, title: str = "Dependency map") -> str:
    """The map as a Markdown page: a Mermaid graph, then one row per dependency."""
    out = [f"# {title}", ""]
    if deps.replica:
        out += [f"Replica `{deps.replica}`, {deps.generated_at:%Y-%m-%d %H:%M:%S} UTC.", ""]
    out += [f"Overall: **{deps.health}**.", "", "```mermaid", render_mermaid(deps), "```", ""]
    out += [
        "| dependency | kind | target | health | breaker | recent calls | error rate "
        "| p50 / p95 ms | agents |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dep in deps.dependencies:
        recent: Mapping[str, Any] = dep.recent or {}
        health = dep.health if not dep.reason else f"{dep.health}: {dep.reason}"
        latency = (
            f"{recent['p50_ms']} / {recent['p95_ms']}" if recent.get("p50_ms") is not None else None
        )
        error_rate = recent.get("error_rate")
        out.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    f"`{dep.id}`",
                    dep.kind,
                    dep.target,
                    health,
                    (dep.breaker or {}).get("state"),
                    recent.get("calls"),
                    None if error_rate is None else f"{error_rate:.1%}",
                    latency,
                    ", ".join(dep.dependents),
                )
            )
            + " |"
        )
    out.append("")
    return "\n".join(out)
