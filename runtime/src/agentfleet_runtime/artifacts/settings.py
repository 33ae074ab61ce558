"""``AGENTFLEET_ARTIFACTS__*``: where artifacts (large tool results, attachments,
transcript exports) are stored, for how long, and how much each tenant may keep."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

KIB = 1024
MIB = 1024 * KIB


class RetentionSettings(BaseModel):
    """Days an artifact of each kind is kept after it was stored (``0``: until deleted).
    The expiry is computed when the artifact is stored and recorded on it: changing
    these applies to new artifacts only."""

    tool_result: int = Field(default=7, ge=0, le=36_500)
    attachment: int = Field(default=30, ge=0, le=36_500)
    transcript: int = Field(default=90, ge=0, le=36_500)


class S3Settings(BaseModel):
    """An S3 bucket, or an S3-compatible store (MinIO, Ceph RGW, R2...) via
    ``endpoint_url``. Credentials come from the usual AWS chain (environment, shared
    config/credentials files, web identity/IRSA, instance or container role) unless
    ``access_key_id``/``secret_access_key`` are set here."""

    bucket: str = ""
    #: First part of every key: ``<prefix><tenant>/<artifact id>``.
    prefix: str = Field(default="agentfleet/artifacts/", pattern=r"^([A-Za-z0-9_.!*'()/-]*)$")
    #: e.g. ``http://minio.storage:9000`` (``None``: AWS S3).
    endpoint_url: str | None = None
    region: str | None = None
    #: ``path`` for most S3-compatible stores (MinIO), ``virtual`` for AWS, ``auto``.
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    #: Seconds to open a connection / to wait for a response (one attempt; the resilience
    #: pipeline ``artifacts`` retries).
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Tag objects with ``agentfleet-kind`` and ``agentfleet-expires`` (for bucket
    #: lifecycle rules); off for stores that do not support object tagging.
    tagging: bool = True


class ArtifactSettings(BaseModel):
    """Large tool results, attachments and transcript exports go to an object store:
    ``filesystem`` (development: a directory) or ``s3`` (production)."""

    backend: Literal["filesystem", "s3"] = "filesystem"
    #: The filesystem backend's directory (relative paths: to the working directory).
    dir: Path = Path(".agentfleet/artifacts")
    s3: S3Settings = Field(default_factory=S3Settings)
    #: A tool result longer than this (UTF-8 bytes) is stored as an artifact; the model
    #: gets its first ``inline_limit_bytes`` and a note naming the artifact.
    inline_limit_bytes: int = Field(default=16 * KIB, ge=256)
    #: Largest attachment upload.
    max_upload_bytes: int = Field(default=10 * MIB, ge=1)
    #: Bytes a tenant may keep stored (``None``: no quota).
    max_bytes_per_tenant: int | None = Field(default=1024 * MIB, ge=1)
    #: Text of attachments given to the model with a message, at most (per attachment).
    attachment_text_limit_bytes: int = Field(default=64 * KIB, ge=256)
    retention_days: RetentionSettings = Field(default_factory=RetentionSettings)
    #: How often each replica deletes expired artifacts (``0``: never).
    sweep_interval_seconds: float = Field(default=3600.0, ge=0)

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> ArtifactSettings:
        if self.backend == "s3" and not self.s3.bucket:
            raise ValueError("AGENTFLEET_ARTIFACTS__S3__BUCKET is required with backend s3")
        return self
