"""Settings of the secrets layer: the ``secrets`` section of ``RuntimeSettings``
(environment ``AGENTFLEET_SECRETS__<FIELD>``, nested with ``__``, e.g.
``AGENTFLEET_SECRETS__VAULT__URL``). Credentials are ``SecretStr``: ``repr`` masks them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from agentfleet_runtime.secrets.manager import SecretManagerOptions


class AwsSecretsOptions(BaseModel):
    region: str | None = None
    #: A custom endpoint (VPC endpoint, LocalStack, moto); https in production.
    endpoint_url: str | None = None
    profile: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)


class AzureKeyVaultOptions(BaseModel):
    #: ``https://<vault>.vault.azure.net``.
    vault_url: str | None = None
    #: A CA bundle to verify the vault's TLS certificate with (private endpoints).
    ca_file: Path | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)


class GcpSecretManagerOptions(BaseModel):
    project: str | None = None
    endpoint: str | None = None
    transport: Literal["grpc", "rest"] | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)


class VaultOptions(BaseModel):
    url: str | None = None
    token: SecretStr | None = None
    #: A file holding the token (re-read on each login), e.g. written by Vault Agent.
    token_file: Path | None = None
    #: Use the Kubernetes auth method with this role (the pod's service-account token).
    kubernetes_role: str | None = None
    kubernetes_mount: str = "kubernetes"
    mount_point: str = "secret"
    kv_version: Literal[1, 2] = 2
    namespace: str | None = None
    #: CA bundle for Vault's TLS certificate; ``tls_verify=false`` only for development.
    ca_file: Path | None = None
    tls_verify: bool = True
    timeout_seconds: float = Field(default=5.0, gt=0)


class SecretsSettings(BaseModel):
    default_ttl_seconds: float = Field(default=300.0, ge=1)
    max_stale_seconds: float = Field(default=3600.0, ge=0)
    expiry_warning_seconds: float = Field(default=3 * 86400.0, ge=0)
    renew_before_seconds: float = Field(default=86400.0, ge=0)
    tick_seconds: float = Field(default=5.0, gt=0)
    retry_seconds: float = Field(default=10.0, gt=0)
    #: Watch mounted Secret files for rotation (inotify); polling when ``force_polling``.
    watch_files: bool = True
    force_polling: bool = False
    #: Development only: ``AGENTFLEET_SECRET_<NAME>`` (env or this file) overrides a bound
    #: secret (name upper-cased, non-alphanumerics as ``_``). Ignored outside development.
    dev_overrides: bool = True
    env_file: Path | None = Path(".env")
    #: Extra readers per secret: ``{"state-kek": ["component:state"]}``.
    grants: dict[str, list[str]] = Field(default_factory=dict)
    #: Model provider → logical secret holding its API key (for keys not in a mounted
    #: Secret, e.g. ``{"anthropic": "anthropic-api-key"}`` bound from AWS/Vault).
    model_api_keys: dict[str, str] = Field(default_factory=dict)
    #: Logical secret holding the key-encryption keyset for data persisted outside memory.
    encryption_key_secret: str | None = None
    aws: AwsSecretsOptions = Field(default_factory=AwsSecretsOptions)
    azure: AzureKeyVaultOptions = Field(default_factory=AzureKeyVaultOptions)
    gcp: GcpSecretManagerOptions = Field(default_factory=GcpSecretManagerOptions)
    vault: VaultOptions = Field(default_factory=VaultOptions)

    def manager_options(self) -> SecretManagerOptions:
        return SecretManagerOptions(
            default_ttl_seconds=self.default_ttl_seconds,
            max_stale_seconds=self.max_stale_seconds,
            expiry_warning_seconds=self.expiry_warning_seconds,
            renew_before_seconds=self.renew_before_seconds,
            tick_seconds=self.tick_seconds,
            retry_seconds=self.retry_seconds,
        )
