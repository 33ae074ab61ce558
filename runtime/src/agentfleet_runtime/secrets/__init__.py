"""Secret management: the ``SecretProvider`` port and its adapters (env/.env, mounted
Kubernetes Secrets, AWS Secrets Manager, Azure Key Vault, GCP Secret Manager, Vault), the
``SecretManager`` (access control, TTL cache with max-stale, validation, rotation
notifications, readiness, versions/rollback, expiry), redaction, audit, and envelope
encryption. See docs/secrets.md.

Imports here stay light: cloud SDKs load only when their provider is created
(``agentfleet_runtime.secrets.factory``); the model-provider wiring lives in
``agentfleet_runtime.secrets.wiring``.
"""

from agentfleet_runtime.audit import AuditEvent, AuditLog
from agentfleet_runtime.secrets.base import SecretProvider, SecretRef, SecretValue, SecretVersion
from agentfleet_runtime.secrets.catalog import (
    SecretCatalog,
    SecretSpec,
    agent_consumer,
    component_consumer,
)
from agentfleet_runtime.secrets.errors import (
    DecryptionError,
    SecretAccessDeniedError,
    SecretNotFoundError,
    SecretProviderNotInstalledError,
    SecretUnavailableError,
    SecretValidationError,
    UnsupportedSecretOperationError,
)
from agentfleet_runtime.secrets.manager import (
    Readiness,
    SecretManager,
    SecretManagerOptions,
    SecretStatus,
    SecretUpdate,
)
from agentfleet_runtime.secrets.redaction import REDACTOR, Redactor, install_log_redaction

__all__ = [
    "REDACTOR",
    "AuditEvent",
    "AuditLog",
    "DecryptionError",
    "Readiness",
    "Redactor",
    "SecretAccessDeniedError",
    "SecretCatalog",
    "SecretManager",
    "SecretManagerOptions",
    "SecretNotFoundError",
    "SecretProvider",
    "SecretProviderNotInstalledError",
    "SecretRef",
    "SecretSpec",
    "SecretStatus",
    "SecretUnavailableError",
    "SecretUpdate",
    "SecretValidationError",
    "SecretValue",
    "SecretVersion",
    "UnsupportedSecretOperationError",
    "agent_consumer",
    "component_consumer",
    "install_log_redaction",
]
