"""An in-memory secret provider with versions, expiry, renewal and outage switch: the
provider of development and of tests that need full control (a real implementation,
not a mock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from agentfleet_runtime.errors import DependencyConnectionError
from agentfleet_runtime.secrets.base import (
    SecretProvider,
    SecretRef,
    SecretValue,
    SecretVersion,
    select_property,
)
from agentfleet_runtime.secrets.errors import (
    SecretNotFoundError,
    UnsupportedSecretOperationError,
)

Renewer = Callable[[SecretRef, SecretValue], tuple[str, timedelta | None]]


@dataclass(slots=True)
class _Version:
    version: str
    value: SecretStr
    created_at: datetime
    expires_at: datetime | None
    enabled: bool = True


@dataclass(slots=True)
class _Secret:
    versions: list[_Version] = field(default_factory=list)


class MemorySecretProvider(SecretProvider):
    """Secrets in a dict. ``available = False`` makes every call fail like an outage;
    ``renewer`` (value, ttl) makes values with an expiry renewable."""

    name = "memory"
    supports_versions = True

    def __init__(self, *, renewer: Renewer | None = None) -> None:
        self._secrets: dict[str, _Secret] = {}
        self.available = True
        self.reads = 0
        self.renewer = renewer
        self._changed = asyncio.Event()

    @property
    def supports_renewal(self) -> bool:  # type: ignore[override]
        return self.renewer is not None

    def put(self, key: str, value: str, *, expires_in: timedelta | None = None) -> str:
        """Store a new version (the current one from now on); returns its version id."""
        secret = self._secrets.setdefault(key, _Secret())
        version = str(len(secret.versions) + 1)
        now = datetime.now(UTC)
        secret.versions.append(
            _Version(version, SecretStr(value), now, now + expires_in if expires_in else None)
        )
        return version

    def disable(self, key: str, version: str) -> None:
        for v in self._secrets[key].versions:
            if v.version == version:
                v.enabled = False

    def _check(self) -> None:
        if not self.available:
            raise DependencyConnectionError(
                "the in-memory secret provider is switched off", dependency=self.dependency
            )

    async def get(self, ref: SecretRef) -> SecretValue:
        self._check()
        self.reads += 1
        secret = self._secrets.get(ref.key)
        enabled = [v for v in secret.versions if v.enabled] if secret else []
        if ref.version is not None:
            enabled = [v for v in enabled if v.version == ref.version]
        if not enabled:
            raise SecretNotFoundError(
                f"secret {ref.key!r}{f' version {ref.version}' if ref.version else ''} not found",
                dependency=self.dependency,
            )
        v = enabled[-1]
        raw = select_property(v.value.get_secret_value(), ref, provider=self.name)
        return SecretValue(
            value=SecretStr(raw),
            version=v.version,
            created_at=v.created_at,
            expires_at=v.expires_at,
            renewable=self.renewer is not None and v.expires_at is not None,
        )

    async def versions(self, ref: SecretRef) -> list[SecretVersion]:
        self._check()
        secret = self._secrets.get(ref.key)
        if secret is None:
            raise SecretNotFoundError(f"secret {ref.key!r} not found", dependency=self.dependency)
        latest = next((v for v in reversed(secret.versions) if v.enabled), None)
        return [
            SecretVersion(v.version, v.created_at, v.enabled, v is latest)
            for v in reversed(secret.versions)
        ]

    async def renew(self, ref: SecretRef, current: SecretValue) -> SecretValue:
        self._check()
        if self.renewer is None:
            raise UnsupportedSecretOperationError(self.name, "renewal")
        value, ttl = self.renewer(ref, current)
        self.put(ref.key, value, expires_in=ttl)
        return await self.get(SecretRef(ref.key, ref.property))
