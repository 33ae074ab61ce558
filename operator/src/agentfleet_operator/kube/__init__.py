"""The only code that talks to the Kubernetes API server (kopf's own watching and status
patching aside)."""

from agentfleet_operator.kube.client import KubeClient
from agentfleet_operator.kube.errors import (
    ConflictError,
    InvalidError,
    KubeError,
    NotFoundError,
    OwnershipConflictError,
)

__all__ = [
    "ConflictError",
    "InvalidError",
    "KubeClient",
    "KubeError",
    "NotFoundError",
    "OwnershipConflictError",
]
