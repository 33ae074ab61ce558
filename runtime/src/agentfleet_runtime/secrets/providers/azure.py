"""Azure Key Vault secrets (``pip install 'agentfleet-runtime[azure]'``).

``ref.key`` is the secret's name in the vault; ``ref.version`` a Key Vault version id;
``ref.property`` a field of a JSON secret. Versions: ``list_properties_of_secret_versions``.
Expiry: the secret's ``expires_on`` attribute. Key Vault cannot renew a secret by itself, so
expiring secrets raise an alert instead. Credentials: ``DefaultAzureCredential`` (workload
identity in AKS) unless one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from agentfleet_runtime.errors import (
    DependencyAuthError,
    DependencyConnectionError,
    DependencyError,
    DependencyTimeoutError,
    status_error,
)
from agentfleet_runtime.secrets.base import (
    SecretProvider,
    SecretRef,
    SecretValue,
    SecretVersion,
    select_property,
)
from agentfleet_runtime.secrets.errors import SecretNotFoundError
from agentfleet_runtime.secrets.providers._sdk import blocking, blocking_translated, require


class AzureKeyVaultProvider(SecretProvider):
    name = "azure"
    supports_versions = True

    def __init__(
        self,
        vault_url: str,
        *,
        credential: Any = None,
        connection_verify: bool | str = True,
        verify_challenge_resource: bool = True,
        timeout: float = 5.0,
        retry_total: int = 1,
        client: Any = None,
    ) -> None:
        secrets_sdk = require("azure.keyvault.secrets", provider=self.name, extra="azure")
        if client is None:
            if credential is None:
                identity = require("azure.identity", provider=self.name, extra="azure")
                credential = identity.DefaultAzureCredential()
            client = secrets_sdk.SecretClient(
                vault_url=vault_url,
                credential=credential,
                verify_challenge_resource=verify_challenge_resource,
                connection_verify=connection_verify,
                connection_timeout=timeout,
                read_timeout=timeout,
                retry_total=retry_total,
                retry_backoff_factor=0.2,
            )
        self._client = client
        self.vault_url = vault_url

    async def get(self, ref: SecretRef) -> SecretValue:
        def call() -> SecretValue:
            secret = self._client.get_secret(ref.key, ref.version)
            props = secret.properties
            if secret.value is None:
                raise SecretNotFoundError(
                    f"Azure Key Vault secret {ref.key!r} has no value", dependency=self.dependency
                )
            return SecretValue(
                value=SecretStr(select_property(secret.value, ref, provider=self.name)),
                version=props.version,
                created_at=props.created_on,
                expires_at=props.expires_on,
            )

        return await self._call(call, ref)

    async def versions(self, ref: SecretRef) -> list[SecretVersion]:
        def call() -> list[SecretVersion]:
            listed = list(self._client.list_properties_of_secret_versions(ref.key))
            listed.sort(key=lambda p: p.created_on.timestamp() if p.created_on else 0, reverse=True)
            latest = next((p for p in listed if p.enabled), None)
            return [
                SecretVersion(
                    version=p.version,
                    created_at=p.created_on,
                    enabled=bool(p.enabled),
                    current=p is latest,
                )
                for p in listed
            ]

        return await self._call(call, ref)

    async def aclose(self) -> None:
        await blocking(self._client.close)

    async def _call[T](self, fn: Callable[[], T], ref: SecretRef) -> T:
        return await blocking_translated(fn, lambda exc: self._translate(exc, ref))

    def _translate(self, exc: Exception, ref: SecretRef) -> DependencyError:
        from azure.core import exceptions as ax

        dep = self.dependency
        what = f"Azure Key Vault, secret {ref.key!r}"
        if isinstance(exc, ax.ResourceNotFoundError):
            return SecretNotFoundError(f"{what}: not found", dependency=dep)
        if isinstance(exc, ax.ClientAuthenticationError):
            return DependencyAuthError(f"{what}: authentication failed", dependency=dep)
        if isinstance(exc, ax.ServiceRequestTimeoutError | ax.ServiceResponseTimeoutError):
            return DependencyTimeoutError(f"{what}: timed out", dependency=dep)
        if isinstance(exc, ax.ServiceRequestError | ax.ServiceResponseError):
            return DependencyConnectionError(f"{what}: unreachable", dependency=dep)
        if isinstance(exc, ax.HttpResponseError):
            code = getattr(exc.error, "code", None) if exc.error else None
            return status_error(
                exc.status_code or 502,
                f"{what}: HTTP {exc.status_code} {code or ''}".strip(),
                dependency=dep,
            )
        return DependencyConnectionError(f"{what}: {type(exc).__name__}", dependency=dep)
