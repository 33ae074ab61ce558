"""The runtime's settings: one typed object, from environment variables
(``AGENTFLEET_*``, nested with ``__``) and CLI flags, created in the app factory.

Precedence (highest first): CLI flags → environment → ``.env`` file → defaults.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

import httpx2
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentfleet_crds.contract import SECRETS_MOUNT_DIR
from agentfleet_runtime.api.ratelimit import ApiRateLimitSettings
from agentfleet_runtime.artifacts.settings import ArtifactSettings
from agentfleet_runtime.auth.settings import TENANT_PATTERN, AuthSettings
from agentfleet_runtime.gc_tuning import GcSettings
from agentfleet_runtime.observability.settings import ObservabilitySettings
from agentfleet_runtime.outbound_http import HttpPool, HttpTransportKind
from agentfleet_runtime.realtime.settings import RealtimeSettings
from agentfleet_runtime.resilience.options import ResilienceSettings
from agentfleet_runtime.scheduling import SchedulingSettings
from agentfleet_runtime.secrets.settings import SecretsSettings
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.tenants import TenantQuotas


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class ProviderKeys(BaseSettings):
    """Model provider credentials used when an agent's model has no ``apiKeySecretRef``.
    Read from the providers' usual environment variables."""

    model_config = SettingsConfigDict(extra="ignore")

    anthropic_api_key: SecretStr | None = Field(default=None, alias="ANTHROPIC_API_KEY")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")


class TenancySettings(BaseModel):
    """``AGENTFLEET_TENANCY__*``: quotas of tenants without their own, and which tenant's
    admins manage every tenant."""

    default_quotas: TenantQuotas = Field(default_factory=TenantQuotas)
    operator_tenant: str = Field(default="default", pattern=TENANT_PATTERN)


class HttpPoolSettings(BaseModel):
    """One HTTP connection pool (``httpx`` limits)."""

    #: Connections open at once (in use or idle).
    max_connections: int = Field(default=256, ge=1, le=10_000)
    #: Idle connections kept for reuse (0: a new connection, TLS handshake included, for
    #: every request).
    max_keepalive_connections: int = Field(default=64, ge=0, le=10_000)
    #: Seconds an idle connection is kept (below the server's idle timeout).
    keepalive_expiry_seconds: float = Field(default=4.0, ge=0, le=3600)

    def limits(self) -> httpx2.Limits:
        return httpx2.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry_seconds,
        )


class PoolSettings(BaseModel):
    """``AGENTFLEET_POOLS__*``: connection pools and caches (docs/performance.md#pools-and-caches).
    The Redis pool is ``AGENTFLEET_STATE__MAX_CONNECTIONS``."""

    #: What sends outbound HTTP (model SDKs, MCP servers): ``aiohttp`` (the default,
    #: cheaper per request) or ``httpx`` (httpx's own transport; HTTP/2 lives there).
    #: docs/performance.md#pools-and-caches
    http_transport: HttpTransportKind = "aiohttp"
    #: One pool per model upstream (provider, base URL, key), shared by every agent.
    model_http: HttpPoolSettings = Field(default_factory=HttpPoolSettings)
    #: One pool per streamable-HTTP MCP connection.
    mcp_http: HttpPoolSettings = Field(
        default_factory=lambda: HttpPoolSettings(max_connections=64, max_keepalive_connections=16)
    )
    #: How long a server's tool list is trusted before it is listed again in the
    #: background (a reload or a ``tools/list_changed`` notification invalidates it
    #: at once); 0: never re-listed on a timer.
    tool_list_ttl_seconds: float = Field(default=300.0, ge=0, le=86_400)

    def pool(self, settings: HttpPoolSettings) -> HttpPool:
        """One of the pools above, on the configured transport."""
        return HttpPool(settings.limits(), self.http_transport)


class DiscoverySettings(BaseModel):
    """``AGENTFLEET_DISCOVERY__*``: watching the runtime config file, registering this
    replica (docs/discovery.md)."""

    #: Apply changes of the runtime config file (``--config``) without a restart.
    watch_config: bool = True
    #: How often the config file is read and compared.
    config_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    #: How often this replica writes its record into the state backend (stale after 3).
    heartbeat_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: How other replicas reach this one (``host:port``; default: ``$POD_IP`` or the host
    #: name, and the port).
    advertise_address: str | None = None
    #: How long the turns running on a replaced agent version may take before its tool
    #: connections are closed.
    drain_seconds: float = Field(default=30.0, ge=0, le=3600)


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENTFLEET_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    environment: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: The runtime config the operator renders (``agentfleet serve --config``).
    config_file: Path | None = None
    #: Agent/MCPServer manifests to load at start (``agentfleet dev -f``).
    manifests: list[Path] = Field(default_factory=list)
    #: Cluster mode: agents come only from the operator's config; the API cannot add any.
    cluster_mode: bool = False
    #: Where Kubernetes Secrets are mounted (``<dir>/<secret>/<key>``).
    secrets_dir: Path = Path(SECRETS_MOUNT_DIR)
    #: Base URL of the fake model provider (``provider: fake``).
    fake_provider_url: str | None = None
    #: Stream model tokens as ``model.delta`` events.
    stream_tokens: bool = True
    #: Seconds running turns get to finish on shutdown.
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    #: The garbage collector of ``agentfleet serve``/``dev`` (agentfleet_runtime.gc_tuning).
    gc: GcSettings = Field(default_factory=GcSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    keys: ProviderKeys = Field(default_factory=ProviderKeys)
    #: State backend (memory | redis), key namespacing, TTLs, leases: docs/state-and-realtime.md.
    state: StateSettings = Field(default_factory=StateSettings)
    #: WebSocket/SSE heartbeat, queues, timeouts, drain delay.
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    #: How REST and WebSocket callers authenticate (none | static tokens).
    auth: AuthSettings = Field(default_factory=AuthSettings)
    #: Server-side rate limits of the API (per caller and endpoint class, per tenant).
    rate_limits: ApiRateLimitSettings = Field(default_factory=ApiRateLimitSettings)
    #: Default tenant quotas; the operator tenant.
    tenancy: TenancySettings = Field(default_factory=TenancySettings)
    #: Turns executing at once on a replica, admitted round-robin across tenants.
    scheduling: SchedulingSettings = Field(default_factory=SchedulingSettings)
    #: This replica's name (leases, logs); defaults to the host name and process id.
    replica_id: str | None = None
    #: The secrets layer (providers, cache, max-stale, expiry): docs/secrets.md.
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    #: Resilience: admin token, feature flags, breaker sharing, rate-limit scope:
    #: docs/resilience.md.
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)
    #: Traces (OTLP), model prices for cost metrics.
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    #: Artifact storage (filesystem | s3), retention, quotas, inline limit: docs/artifacts.md.
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    #: Config file watch (hot reload) and replica registration.
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    #: HTTP connection pools of model and MCP clients; tool list cache.
    pools: PoolSettings = Field(default_factory=PoolSettings)

    @model_validator(mode="after")
    def _safe_outside_development(self) -> RuntimeSettings:
        if self.environment is not Environment.DEVELOPMENT and self.fake_provider_url:
            raise ValueError(
                "fake_provider_url is a development/test setting; "
                f"unset AGENTFLEET_FAKE_PROVIDER_URL in {self.environment.value}"
            )
        if (
            self.environment is Environment.PRODUCTION
            and self.auth.mode == "none"
            and not self.auth.allow_none_in_production
        ):
            raise ValueError(
                "AGENTFLEET_AUTH__MODE=none lets anyone in: set a mode (api-keys, jwt, "
                "static) in production, or AGENTFLEET_AUTH__ALLOW_NONE_IN_PRODUCTION=true "
                "behind an authenticating gateway"
            )
        return self
