"""Google Cloud Secret Manager (``pip install 'agentfleet-runtime[gcp]'``).

``ref.key`` is ``projects/<p>/secrets/<s>`` or just ``<s>`` (in the configured project);
``ref.version`` a version number (``latest`` when unset); ``ref.property`` a field of a
JSON secret. Payload checksums (CRC32C) are verified when the service sends them.
Versions: ``ListSecretVersions``. Expiry: the secret's ``expire_time`` (when Secret Manager
deletes it) is reported as ``expires_at``; there is no renewal, so it alerts. Credentials:
Application Default Credentials (Workload Identity in GKE) unless given. ``transport`` is
``grpc`` (default) or ``rest``; ``endpoint`` may carry a scheme (``http://`` for local
fakes, used with ``rest``). Calls are made once (``retry=None``): the secret manager's
cache, max-stale and background retries own retrying.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from agentfleet_runtime.errors import (
    DependencyAuthError,
    DependencyConnectionError,
    DependencyError,
    DependencyTimeoutError,
    OverloadedError,
    RateLimitedError,
    UpstreamServerError,
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


class GcpSecretManagerProvider(SecretProvider):
    name = "gcp"
    supports_versions = True

    def __init__(
        self,
        project: str | None = None,
        *,
        endpoint: str | None = None,
        transport: str | None = None,
        credentials: Any = None,
        timeout: float = 5.0,
        client: Any = None,
    ) -> None:
        sm = require("google.cloud.secretmanager", provider=self.name, extra="gcp")
        if client is None:
            client = sm.SecretManagerServiceClient(
                credentials=credentials,
                transport=transport,
                client_options={"api_endpoint": endpoint} if endpoint else None,
            )
        self._client = client
        self.project = project
        self.timeout = timeout

    def secret_name(self, key: str) -> str:
        if key.startswith("projects/"):
            return key
        if not self.project:
            raise SecretNotFoundError(
                f"GCP secret {key!r} is not a full name (projects/<p>/secrets/<s>) and no "
                "project is configured",
                dependency=self.dependency,
            )
        return f"projects/{self.project}/secrets/{key}"

    async def get(self, ref: SecretRef) -> SecretValue:
        def call() -> SecretValue:
            secret = self.secret_name(ref.key)
            resp = self._client.access_secret_version(
                name=f"{secret}/versions/{ref.version or 'latest'}",
                retry=None,
                timeout=self.timeout,
            )
            data: bytes = resp.payload.data
            expected = resp.payload.data_crc32c
            if expected and _crc32c is not None and _crc32c(data) != expected:
                raise UpstreamServerError(
                    f"GCP secret {ref.key!r}: payload checksum mismatch",
                    dependency=self.dependency,
                )
            meta = self._client.get_secret(name=secret, retry=None, timeout=self.timeout)
            expire_time = meta.expire_time if "expire_time" in meta else None
            return SecretValue(
                value=SecretStr(select_property(data.decode("utf-8"), ref, provider=self.name)),
                version=resp.name.rsplit("/", 1)[-1],
                expires_at=_datetime(expire_time),
            )

        return await self._call(call, ref)

    async def versions(self, ref: SecretRef) -> list[SecretVersion]:
        def call() -> list[SecretVersion]:
            parent = self.secret_name(ref.key)
            listed = list(
                self._client.list_secret_versions(parent=parent, retry=None, timeout=self.timeout)
            )
            result = [
                SecretVersion(
                    version=v.name.rsplit("/", 1)[-1],
                    created_at=_datetime(v.create_time),
                    enabled=v.state.name == "ENABLED",
                )
                for v in listed
            ]
            result.sort(key=lambda v: int(v.version) if v.version.isdigit() else 0, reverse=True)
            latest = next((v for v in result if v.enabled), None)
            return [SecretVersion(v.version, v.created_at, v.enabled, v is latest) for v in result]

        return await self._call(call, ref)

    async def aclose(self) -> None:
        transport = getattr(self._client, "transport", None)
        if transport is not None:
            await blocking(transport.close)

    async def _call[T](self, fn: Callable[[], T], ref: SecretRef) -> T:
        return await blocking_translated(fn, lambda exc: self._translate(exc, ref))

    def _translate(self, exc: Exception, ref: SecretRef) -> DependencyError:
        from google.api_core import exceptions as gx

        dep = self.dependency
        what = f"GCP Secret Manager, secret {ref.key!r}"
        if isinstance(exc, gx.NotFound):
            return SecretNotFoundError(f"{what}: not found", dependency=dep)
        if isinstance(exc, gx.PermissionDenied | gx.Unauthenticated):
            return DependencyAuthError(f"{what}: {type(exc).__name__}", dependency=dep)
        if isinstance(exc, gx.TooManyRequests | gx.ResourceExhausted):
            return RateLimitedError(f"{what}: throttled", dependency=dep)
        if isinstance(exc, gx.ServiceUnavailable):
            return OverloadedError(f"{what}: unavailable", dependency=dep)
        if isinstance(exc, gx.DeadlineExceeded):
            return DependencyTimeoutError(f"{what}: timed out", dependency=dep)
        if isinstance(exc, gx.GoogleAPICallError):
            code = exc.code if isinstance(exc.code, int) else 502
            return status_error(code, f"{what}: {type(exc).__name__}", dependency=dep)
        if type(exc).__module__.startswith("google.auth"):
            return DependencyAuthError(f"{what}: credentials: {type(exc).__name__}", dependency=dep)
        return DependencyConnectionError(f"{what}: {type(exc).__name__}", dependency=dep)


def _load_crc32c() -> Callable[[bytes], int] | None:
    try:
        import google_crc32c
    except ImportError:  # an optional speed-up of google-cloud; checksums skipped without it
        return None
    value: Callable[[bytes], int] = google_crc32c.value
    return value


_crc32c = _load_crc32c()


def _datetime(value: Any) -> datetime | None:
    """protobuf timestamps come back as ``DatetimeWithNanoseconds`` (a datetime)."""
    if value is None or not isinstance(value, datetime):
        return None
    if value.timestamp() <= 0:
        return None
    return value
