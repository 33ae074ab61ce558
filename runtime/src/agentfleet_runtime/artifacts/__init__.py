"""Artifact storage: large tool results, attachments and session transcript exports, kept
in an object store (S3 or S3-compatible in production, a directory in development) and
referenced from messages. See docs/artifacts.md."""

from agentfleet_runtime.artifacts.base import ArtifactKind, ArtifactMeta, ArtifactStore
from agentfleet_runtime.artifacts.errors import (
    ArtifactQuotaExceededError,
    ArtifactStoreDeniedError,
    ArtifactStoreUnavailableError,
    ArtifactTooLargeError,
)
from agentfleet_runtime.artifacts.service import ArtifactService
from agentfleet_runtime.artifacts.settings import ArtifactSettings, RetentionSettings, S3Settings

__all__ = [
    "ArtifactKind",
    "ArtifactMeta",
    "ArtifactQuotaExceededError",
    "ArtifactService",
    "ArtifactSettings",
    "ArtifactStore",
    "ArtifactStoreDeniedError",
    "ArtifactStoreUnavailableError",
    "ArtifactTooLargeError",
    "RetentionSettings",
    "S3Settings",
]
