"""Applying a changed runtime config to a running process, agent by agent.

The new config is compared with the one in force:

* an agent that appeared is loaded; one that left is unloaded (its running turns finish
  first, its sessions stay in the state backend);
* an agent whose config changed in any way — its spec (model, prompt, tools), its
  resolved MCP servers (URL, headers, timeouts), its ResiliencePolicy or its secret
  bindings — is *switched over*: the new version is built beside the old one, its tool
  servers connected and listed, and it replaces the old one only if every one of them is
  healthy (:meth:`AgentService.switch_agent`). Turns already running finish on the old
  version; its connections are closed after them.
* a new version that fails its health checks is **rolled back**: the old version keeps
  serving and the reason is reported (log, ``agentfleet_config_reloads_total{outcome=
  "rolled_back"}``). The effective config keeps the old version's entry, so the next
  change of the file is compared with what really runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agentfleet_crds.contract import AgentConfig, RuntimeConfig
from agentfleet_runtime.agent.service import AgentReloadError, AgentService
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.state.base import AgentSource

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReloadReport:
    """What a reload did, per agent name."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    switched: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: Agent → why its new version was not taken (the old one keeps serving).
    rolled_back: dict[str, str] = field(default_factory=dict)
    #: Secret names added, changed and removed (when the bindings changed).
    secrets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """``rolled_back`` when some agent kept its old version, else ``applied``."""
        return "rolled_back" if self.rolled_back else "applied"

    def as_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "added": self.added,
            "removed": self.removed,
            "switched": self.switched,
            "unchanged": self.unchanged,
            "rolled_back": self.rolled_back,
            "secrets": self.secrets,
        }


#: Adopts the secret bindings of a new config (answers what changed, by kind).
AdoptSecrets = Callable[[RuntimeConfig], Awaitable[dict[str, list[str]]]]


async def apply_runtime_config(
    service: AgentService,
    current: RuntimeConfig,
    new: RuntimeConfig,
    *,
    adopt_secrets: AdoptSecrets | None = None,
) -> tuple[ReloadReport, RuntimeConfig]:
    """Make the process run ``new`` (see the module docstring). Returns the report and
    the config now in force (``new``, with rolled-back agents' old entries kept).

    ``adopt_secrets`` runs first, so that switched agents read the new bindings; when it
    fails the whole change is rolled back (reported under ``secrets``)."""
    report = ReloadReport()
    if adopt_secrets is not None and _secrets_of(current) != _secrets_of(new):
        try:
            report.secrets = await adopt_secrets(new)
        except Exception as exc:
            report.rolled_back["secrets"] = f"the new secret bindings cannot be served: {exc}"
            log.error("secret bindings rolled back", extra={"reason": str(exc)})
            return report, current
    old = {agent.name: agent for agent in current.agents}
    wanted = {agent.name: agent for agent in new.agents}
    effective: dict[str, AgentConfig] = {}
    # The MCP servers agents created through the API may reference: the new config's.
    service.mcp_servers.sync_config(
        {server.name: server for agent in new.agents for server in agent.mcp_servers}
    )
    for name in sorted(old.keys() - wanted.keys()):
        await service.unload_agent(name)
        report.removed.append(name)
    for name, config in wanted.items():
        before = old.get(name)
        if before == config:
            report.unchanged.append(name)
            effective[name] = config
            continue
        try:
            if before is None:
                await service.load_agent(config, AgentSource.CONFIG)
                report.added.append(name)
            else:
                await service.switch_agent(config, AgentSource.CONFIG)
                report.switched.append(name)
            effective[name] = config
        except AgentReloadError as exc:
            report.rolled_back[name] = exc.detail
            if before is not None:
                effective[name] = before
            log.error(
                "agent configuration rolled back",
                extra={"agent": name, "reason": exc.detail},
            )
    for change in ("added", "removed", "switched"):
        count = len(getattr(report, change))
        if count:
            metrics.CONFIG_AGENT_CHANGES.labels(change).inc(count)
    if report.rolled_back:
        metrics.CONFIG_AGENT_CHANGES.labels("rolled_back").inc(len(report.rolled_back))
    order = [agent.name for agent in new.agents if agent.name in effective]
    return report, RuntimeConfig(agents=[effective[name] for name in order])


def _secrets_of(config: RuntimeConfig) -> dict[str, list[object]]:
    return {agent.name: list(agent.secrets) for agent in config.agents}
