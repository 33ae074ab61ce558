"""The ``SecretProvider`` port and the values that cross it.

A provider reads one secret (``SecretRef``: the provider's key, an optional JSON property,
an optional pinned version) and answers a :class:`SecretValue` — the value as a pydantic
``SecretStr`` plus the metadata the provider has (version, creation time, expiry, whether
it can be renewed). Optional capabilities (``versions``, ``renew``, ``watch``) raise
:class:`UnsupportedSecretOperationError` unless the provider overrides them; its
``supports_*`` flags say which it has.

Adapters translate their SDK's exceptions at this boundary into the runtime's hierarchy:
:class:`SecretNotFoundError` (no such secret/version/property), ``DependencyAuthError``
(credentials refused), and the retryable ``DependencyError`` subclasses (unreachable,
timeouts, throttling, 5xx) — which is what lets the cache serve a stale value.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr

from agentfleet_runtime.secrets.errors import (
    SecretNotFoundError,
    UnsupportedSecretOperationError,
)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret is in its provider: ``key`` (file ``<secret>/<key>``, ARN, name,
    Vault path, env var), ``property`` (a field of a JSON-valued secret) and ``version``
    (pinned; latest when ``None``)."""

    key: str
    property: str | None = None
    version: str | None = None

    def at(self, version: str | None) -> SecretRef:
        return SecretRef(self.key, self.property, version)


@dataclass(frozen=True, slots=True)
class SecretValue:
    """One read of a secret. ``repr`` never shows the value (it is a ``SecretStr``)."""

    value: SecretStr
    version: str | None = None
    created_at: datetime | None = None
    #: When the secret stops being valid, where the provider says so.
    expires_at: datetime | None = None
    #: Whether :meth:`SecretProvider.renew` can extend it (a Vault lease, an AWS rotation).
    renewable: bool = False
    #: Provider handle for renewal (a Vault lease id); not secret, but noisy.
    lease_id: str | None = field(default=None, repr=False)

    def reveal(self) -> str:
        return self.value.get_secret_value()


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """A version a provider keeps of a secret (no value)."""

    version: str
    created_at: datetime | None = None
    enabled: bool = True
    current: bool = False
    stages: tuple[str, ...] = ()


class SecretProvider(ABC):
    """Reads secrets from one backend. Implementations are thread-safe for reads and
    never log values."""

    #: A short name for metrics, logs and errors: ``files``, ``env``, ``aws``...
    name: str = "secrets"
    supports_versions: bool = False
    supports_renewal: bool = False
    supports_watch: bool = False

    @property
    def dependency(self) -> str:
        return f"secrets:{self.name}"

    @abstractmethod
    async def get(self, ref: SecretRef) -> SecretValue:
        """The secret's value (its ``ref.version`` if pinned). Raises
        :class:`SecretNotFoundError` or a ``DependencyError``."""

    async def versions(self, ref: SecretRef) -> list[SecretVersion]:
        """The versions the provider keeps, newest first."""
        raise UnsupportedSecretOperationError(self.name, "versions")

    async def renew(self, ref: SecretRef, current: SecretValue) -> SecretValue:
        """Extend or replace ``current`` before it expires; answers the value to use."""
        raise UnsupportedSecretOperationError(self.name, "renewal")

    def watch(self, refs: Collection[SecretRef]) -> AsyncIterator[set[SecretRef]]:
        """Sets of ``refs`` whose value may have changed, as changes happen (runs until
        cancelled or :meth:`aclose`)."""
        raise UnsupportedSecretOperationError(self.name, "watch")

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a default
        """Release clients and stop watches."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def select_property(raw: str, ref: SecretRef, *, provider: str) -> str:
    """``raw`` itself, or the ``ref.property`` field of ``raw`` parsed as a JSON object.
    Errors name the secret and property, never the content."""
    if ref.property is None:
        return raw
    try:
        data = json.loads(raw)
    except ValueError:
        raise SecretNotFoundError(
            f"secret {ref.key!r} is not a JSON object, so it has no property {ref.property!r}",
            dependency=f"secrets:{provider}",
        ) from None
    if not isinstance(data, dict) or ref.property not in data:
        raise SecretNotFoundError(
            f"secret {ref.key!r} has no property {ref.property!r}",
            dependency=f"secrets:{provider}",
        )
    return select_field(data, ref, provider=provider)


def select_field(data: dict[str, object], ref: SecretRef, *, provider: str) -> str:
    """The ``ref.property`` field of a mapping-valued secret (Vault, JSON); with no
    property, the only field or the field ``value``."""
    prop = ref.property
    if prop is None:
        if len(data) == 1:
            prop = next(iter(data))
        elif "value" in data:
            prop = "value"
        else:
            raise SecretNotFoundError(
                f"secret {ref.key!r} has several fields ({', '.join(sorted(data))}); "
                "name one with property",
                dependency=f"secrets:{provider}",
            )
    if prop not in data:
        raise SecretNotFoundError(
            f"secret {ref.key!r} has no property {prop!r}", dependency=f"secrets:{provider}"
        )
    value = data[prop]
    return value if isinstance(value, str) else json.dumps(value)
