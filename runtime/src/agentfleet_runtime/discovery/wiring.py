"""Wiring discovery into the app's lifespan: the config file watch (cluster mode) and
this replica's registration."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentfleet_crds.contract import RuntimeConfig
from agentfleet_runtime import __version__
from agentfleet_runtime.discovery.config_file import ConfigFileSource, config_digest
from agentfleet_runtime.discovery.instances import InstanceHeartbeat
from agentfleet_runtime.discovery.reload import ReloadReport, apply_runtime_config
from agentfleet_runtime.loader import ConfigError, parse_runtime_config
from agentfleet_runtime.secrets.factory import build_secret_catalog, missing_providers
from agentfleet_runtime.state.base import utcnow
from agentfleet_runtime.state.instances import InstanceRecord

if TYPE_CHECKING:
    from agentfleet_runtime.agent.service import AgentService
    from agentfleet_runtime.config import RuntimeSettings
    from agentfleet_runtime.secrets.manager import SecretManager
    from agentfleet_runtime.state.factory import StateBackend

#: Answers why this replica is not ready (``None``: ready).
NotReady = Callable[[], Awaitable[str | None]]


@dataclass
class Discovery:
    """What the app keeps: the config in force, its watch, the heartbeat."""

    config: RuntimeConfig
    heartbeat: InstanceHeartbeat
    config_source: ConfigFileSource | None = None
    #: The digest of the config file in force (``None``: no config file).
    digest: str | None = None
    _apply_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def agents_loaded(self) -> None:
        """Called once the start-up agents are loaded: now changes may be applied, and
        the registry hears at once that this replica is ready."""
        self.heartbeat.nudge()
        if self.config_source is not None:
            self.config_source.start()

    @property
    def config_digest(self) -> str | None:
        if self.config_source is not None and self.config_source.digest is not None:
            return self.config_source.digest
        return self.digest


def advertise_address(settings: RuntimeSettings) -> str:
    if settings.discovery.advertise_address:
        return settings.discovery.advertise_address
    host = os.environ.get("POD_IP") or socket.gethostname()
    return f"{host}:{settings.port}"


@contextlib.asynccontextmanager
async def open_discovery(
    settings: RuntimeSettings,
    config: RuntimeConfig,
    service: AgentService,
    state: StateBackend,
    *,
    replica: str,
    not_ready: NotReady,
    refusing: Callable[[], list[str]],
    secrets: SecretManager | None = None,
) -> AsyncIterator[Discovery]:
    started = utcnow()
    address = advertise_address(settings)
    holder: dict[str, Any] = {}

    async def describe() -> InstanceRecord:
        discovery: Discovery = holder["discovery"]
        reason = await not_ready()
        return InstanceRecord(
            id=replica,
            version=__version__,
            address=address,
            started_at=started,
            ttl_seconds=heartbeat.ttl_seconds,
            ready=reason is None,
            not_ready_reason=reason,
            agents=sorted(service.shared_agents()),
            config_digest=discovery.config_digest,
            degraded=state.degraded is not None and state.degraded.degraded,
            refusing=refusing(),
        )

    heartbeat = InstanceHeartbeat(
        state.instances, describe, interval=settings.discovery.heartbeat_seconds
    )
    discovery = Discovery(config=config, heartbeat=heartbeat)
    holder["discovery"] = discovery
    path = settings.config_file
    if path is not None:
        text = await _read(path)
        discovery.digest = config_digest(text) if text is not None else None
        if settings.discovery.watch_config:

            async def adopt_secrets(new: RuntimeConfig) -> dict[str, list[str]]:
                assert secrets is not None
                catalog = build_secret_catalog(
                    settings.secrets,
                    secrets_dir=settings.secrets_dir,
                    development=settings.environment == "development",
                    resolved={agent.name: agent.secrets for agent in new.agents},
                )
                providers = missing_providers(
                    catalog,
                    settings.secrets,
                    secrets_dir=settings.secrets_dir,
                    have=secrets.providers,
                )
                return await secrets.adopt(catalog, providers)

            async def apply(new: RuntimeConfig) -> ReloadReport:
                async with discovery._apply_lock:
                    report, discovery.config = await apply_runtime_config(
                        service,
                        discovery.config,
                        new,
                        adopt_secrets=adopt_secrets if secrets is not None else None,
                    )
                    return report

            # The file as read now is in force only if it is what the process loaded.
            initial = text if text is not None and _same(text, config) else None
            discovery.config_source = ConfigFileSource(
                path, apply, interval=settings.discovery.config_poll_seconds, initial_text=initial
            )
    heartbeat.start()
    try:
        yield discovery
    finally:
        if discovery.config_source is not None:
            await discovery.config_source.aclose()
        await heartbeat.aclose(replica)


async def _read(path: Any) -> str | None:
    try:
        text: str = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except OSError:
        return None
    return text


def _same(text: str, config: RuntimeConfig) -> bool:
    try:
        return parse_runtime_config(text, origin="config") == config
    except ConfigError:
        return False
