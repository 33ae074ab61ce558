"""Errors of the secrets layer, placed in the runtime's one hierarchy.

No message or extension ever holds a secret value: they name the secret (its logical
name), the provider and the consumer, never what the secret contains.

::

    AgentfleetError
    ├── SecretAccessDeniedError          403 secret-access-denied   (audited)
    ├── SecretValidationError            500 secret-invalid         (alert-worthy)
    ├── SecretProviderNotInstalledError  500 secret-provider-not-installed
    ├── UnsupportedSecretOperationError  409 secret-operation-unsupported
    ├── DecryptionError                  500 decryption-failed
    └── DependencyError
        ├── SecretNotFoundError          502 secret-not-found       (DependencyNotFoundError)
        └── SecretUnavailableError       503 secret-unavailable     (retryable; no value
                                                                    within max-stale)
"""

from __future__ import annotations

from typing import Any

from agentfleet_runtime.errors import (
    AgentfleetError,
    DependencyNotFoundError,
    RetryableDependencyError,
)


class SecretAccessDeniedError(AgentfleetError):
    """A consumer asked for a secret its SecretBinding does not grant it (or one that is
    bound to nobody: the two are indistinguishable on purpose)."""

    status = 403
    slug = "secret-access-denied"
    title = "Access to the secret is denied"

    def __init__(self, secret: str, consumer: str) -> None:
        super().__init__(
            f"consumer {consumer!r} may not read secret {secret!r}",
            secret=secret,
            consumer=consumer,
        )
        self.secret = secret
        self.consumer = consumer


class SecretValidationError(AgentfleetError):
    """A secret's value failed its validator (the reason never quotes the value)."""

    slug = "secret-invalid"
    title = "A secret failed validation"

    def __init__(self, secret: str, reason: str) -> None:
        super().__init__(f"secret {secret!r} failed validation: {reason}", secret=secret)
        self.secret = secret
        self.reason = reason


class SecretProviderNotInstalledError(AgentfleetError):
    """A secret provider's SDK is an optional extra that is not installed."""

    slug = "secret-provider-not-installed"
    title = "A secret provider's SDK is not installed"

    def __init__(self, provider: str, extra: str, module: str) -> None:
        super().__init__(
            f"the {provider!r} secret provider needs the Python package that provides "
            f"{module!r}: install it with  pip install 'agentfleet-runtime[{extra}]'  "
            f"(or  uv sync --extra {extra})",
            provider=provider,
            extra=extra,
        )
        self.provider = provider
        self.extra = extra


class UnsupportedSecretOperationError(AgentfleetError):
    """The provider cannot do this (versions, rollback, renewal...)."""

    status = 409
    slug = "secret-operation-unsupported"
    title = "The secret provider does not support this operation"

    def __init__(self, provider: str, operation: str) -> None:
        super().__init__(
            f"secret provider {provider!r} does not support {operation}",
            provider=provider,
            operation=operation,
        )
        self.provider = provider
        self.operation = operation


class DecryptionError(AgentfleetError):
    """Ciphertext could not be decrypted: wrong or unknown key, tampering, or not ours."""

    slug = "decryption-failed"
    title = "Decryption failed"


class SecretNotFoundError(DependencyNotFoundError):
    """The provider does not have the secret (or the version, or the JSON property)."""

    slug = "secret-not-found"
    title = "A secret was not found in its provider"

    def __init__(self, detail: str, *, dependency: str = "secrets", **extensions: Any) -> None:
        super().__init__(detail, dependency=dependency, **extensions)


class SecretUnavailableError(RetryableDependencyError):
    """No usable value: the provider failed and no last good value is within max-stale
    (or the secret never resolved)."""

    status = 503
    slug = "secret-unavailable"
    title = "A secret is unavailable"
    error_class = "connection"

    def __init__(self, secret: str, detail: str, *, dependency: str = "secrets") -> None:
        super().__init__(
            f"secret {secret!r} is unavailable: {detail}", dependency=dependency, secret=secret
        )
        self.secret = secret
