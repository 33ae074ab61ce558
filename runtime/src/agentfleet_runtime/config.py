"""The runtime's settings: one typed object, from environment variables
(``AGENTFLEET_*``, nested with ``__``) and CLI flags, created in the app factory.

Precedence (highest first): CLI flags → environment → ``.env`` file → defaults.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentfleet_crds.contract import SECRETS_MOUNT_DIR
from agentfleet_runtime.api.ratelimit import ApiRateLimitSettings
from agentfleet_runtime.auth.settings import TENANT_PATTERN, AuthSettings
from agentfleet_runtime.observability.settings import ObservabilitySettings
from agentfleet_runtime.realtime.settings import RealtimeSettings
from agentfleet_runtime.resilience.options import ResilienceSettings
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
    #: This replica's name (leases, logs); defaults to the host name and process id.
    replica_id: str | None = None
    #: The secrets layer (providers, cache, max-stale, expiry): docs/secrets.md.
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    #: Resilience: admin token, feature flags, breaker sharing, rate-limit scope:
    #: docs/resilience.md.
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)
    #: Traces (OTLP), model prices for cost metrics.
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

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
