"""``S3ArtifactStore``: artifacts as objects of an S3 bucket (or an S3-compatible store:
MinIO, Ceph RGW, R2... through ``endpoint_url``), key ``<prefix><tenant>/<artifact id>``.

* The metadata travels as the object's user metadata (``x-amz-meta-agentfleet-*``); the
  kind and expiry also as object tags (``agentfleet-kind``, ``agentfleet-expires``), so a
  bucket lifecycle rule can expire objects even if no replica sweeps.
* boto3 is synchronous: each call runs in a worker thread (``asyncio.to_thread``), through
  the resilience pipeline ``artifacts`` (``storage`` category: deadline per attempt,
  retries with backoff of connection errors, timeouts, 5xx and throttling, circuit
  breaker, bulkhead). botocore's own retries are off — two retry layers multiply.
* :func:`translate` maps botocore errors to the runtime's: ``SlowDown``/throttling →
  :class:`RateLimitedError`; ``QuotaExceeded`` (and MinIO's quota/storage-full codes,
  HTTP 507) → :class:`ArtifactQuotaExceededError`; ``EntityTooLarge`` →
  :class:`ArtifactTooLargeError`; ``AccessDenied``/bad credentials →
  :class:`ArtifactStoreDeniedError` — the last three are never retried.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)

from agentfleet_runtime.artifacts.base import ArtifactKind, ArtifactMeta, expired_ids, id_expiry
from agentfleet_runtime.artifacts.errors import (
    DEPENDENCY,
    ArtifactQuotaExceededError,
    ArtifactStoreDeniedError,
    ArtifactTooLargeError,
)
from agentfleet_runtime.artifacts.settings import S3Settings
from agentfleet_runtime.errors import (
    DependencyConnectionError,
    DependencyError,
    DependencyNotFoundError,
    DependencyTimeoutError,
    RateLimitedError,
    UpstreamBadRequestError,
    UpstreamServerError,
)
from agentfleet_runtime.resilience.pipeline import Attempt

if TYPE_CHECKING:
    from agentfleet_runtime.resilience.pipeline import Pipeline

__all__ = ["S3ArtifactStore", "s3_client", "translate"]

_THROTTLED = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
_QUOTA = frozenset(
    {
        "QuotaExceeded",
        "ServiceQuotaExceededException",
        "InsufficientStorage",
        "XMinioAdminBucketQuotaExceeded",
        "XMinioStorageFull",
    }
)
_DENIED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AccountProblem",
    }
)
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_META = "agentfleet-"


def translate(exc: BaseException, *, dependency: str = DEPENDENCY) -> BaseException:
    """The runtime's error for a botocore exception (others are returned unchanged)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = f"{dependency}: S3 {code or status}: {error.get('Message') or exc}"
        if code in _THROTTLED or status == 429:
            return RateLimitedError(detail, dependency=dependency)
        if code in _QUOTA or status == 507:
            return ArtifactQuotaExceededError(detail, dependency=dependency, s3_code=code)
        if code == "EntityTooLarge":
            return ArtifactTooLargeError(detail, dependency=dependency, s3_code=code)
        if code in _DENIED or status in (401, 403):
            return ArtifactStoreDeniedError(detail, dependency=dependency, s3_code=code)
        if code == "NoSuchBucket":
            return DependencyNotFoundError(detail, dependency=dependency, s3_code=code)
        if status >= 500:
            return UpstreamServerError(detail, dependency=dependency)
        return UpstreamBadRequestError(detail, dependency=dependency, s3_code=code)
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return DependencyTimeoutError(f"{dependency}: {exc}", dependency=dependency)
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | HTTPClientError):
        return DependencyConnectionError(f"{dependency}: {exc}", dependency=dependency)
    if isinstance(exc, NoCredentialsError):
        return ArtifactStoreDeniedError(f"{dependency}: {exc}", dependency=dependency)
    if isinstance(exc, BotoCoreError):
        detail = f"{dependency}: {type(exc).__name__}: {exc}"
        return UpstreamServerError(detail, dependency=dependency)
    return exc


def s3_client(settings: S3Settings) -> Any:
    """A boto3 S3 client without botocore retries (the pipeline owns them)."""
    session = boto3.session.Session(
        aws_access_key_id=(
            settings.access_key_id.get_secret_value() if settings.access_key_id else None
        ),
        aws_secret_access_key=(
            settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
        ),
        region_name=settings.region,
    )
    config = Config(
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        retries={"total_max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": settings.addressing_style},
        max_pool_connections=32,
    )
    return session.client("s3", endpoint_url=settings.endpoint_url, config=config)


class S3ArtifactStore:
    name = "s3"

    def __init__(
        self, settings: S3Settings, *, pipeline: Pipeline | None = None, client: Any = None
    ) -> None:
        if not settings.bucket:
            raise ValueError("AGENTFLEET_ARTIFACTS__S3__BUCKET is required for the s3 backend")
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.tagging = settings.tagging
        self._client = client if client is not None else s3_client(settings)
        self._pipeline = pipeline

    def _key(self, tenant: str, artifact_id: str) -> str:
        return f"{self.prefix}{tenant}/{artifact_id}"

    async def _call[T](self, fn: Callable[[], T]) -> T:
        async def attempt(_attempt: Attempt) -> T:
            try:
                return await asyncio.to_thread(fn)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc

        if self._pipeline is None:
            return await attempt(Attempt(1, None))
        return await self._pipeline.execute(attempt)

    # -- operations -----------------------------------------------------------------------

    async def put(self, meta: ArtifactMeta, data: bytes) -> None:
        extra: dict[str, Any] = {}
        if self.tagging:
            tags = {"agentfleet-kind": meta.kind.value}
            if meta.expires_at is not None:
                tags["agentfleet-expires"] = meta.expires_at.date().isoformat()
            extra["Tagging"] = urlencode(tags)
        put = functools.partial(
            self._client.put_object,
            Bucket=self.bucket,
            Key=self._key(meta.tenant, meta.id),
            Body=data,
            ContentType=meta.content_type,
            Metadata=_to_metadata(meta),
            **extra,
        )
        await self._call(put)

    async def get(self, tenant: str, artifact_id: str) -> tuple[ArtifactMeta, bytes] | None:
        key = self._key(tenant, artifact_id)

        def get() -> tuple[ArtifactMeta, bytes] | None:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _missing(exc):
                    return None
                raise
            body = response["Body"].read()
            return _from_metadata(tenant, artifact_id, response, len(body)), body

        return await self._call(get)

    async def head(self, tenant: str, artifact_id: str) -> ArtifactMeta | None:
        key = self._key(tenant, artifact_id)

        def head() -> ArtifactMeta | None:
            try:
                response = self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _missing(exc):
                    return None
                raise
            return _from_metadata(tenant, artifact_id, response, int(response["ContentLength"]))

        return await self._call(head)

    async def delete(self, tenant: str, artifact_id: str) -> bool:
        """Deletes the object; ``True`` (S3 does not say whether it existed)."""
        key = self._key(tenant, artifact_id)
        await self._call(functools.partial(self._client.delete_object, Bucket=self.bucket, Key=key))
        return True

    async def list_expired(self, now: datetime, *, limit: int = 1000) -> list[tuple[str, str]]:
        def listing() -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = []
            for key, _size in self._objects(self.prefix):
                tenant, _, artifact_id = key[len(self.prefix) :].partition("/")
                found.extend(expired_ids([(tenant, artifact_id)], now))
                if len(found) >= limit:
                    break
            return found

        return await self._call(listing)

    async def usage(self, tenant: str) -> int:
        def total() -> int:
            now = datetime.now().astimezone()
            used = 0
            for key, size in self._objects(f"{self.prefix}{tenant}/"):
                expiry = id_expiry(key.rpartition("/")[2])
                if expiry is None or expiry > now:
                    used += size
            return used

        return await self._call(total)

    def _objects(self, prefix: str) -> list[tuple[str, int]]:
        paginator = self._client.get_paginator("list_objects_v2")
        objects = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                objects.append((str(item["Key"]), int(item["Size"])))
        return objects

    async def aclose(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _MISSING or status == 404


def _to_metadata(meta: ArtifactMeta) -> dict[str, str]:
    fields = {
        "tenant": meta.tenant,
        "kind": meta.kind.value,
        "created": meta.created_at.isoformat(),
        "expires": meta.expires_at.isoformat() if meta.expires_at else "",
        "session": meta.session_id or "",
        "name": quote(meta.name or "", safe=""),  # metadata values are ASCII
        "sha256": meta.sha256 or "",
    }
    return {_META + key: value for key, value in fields.items()}


def _from_metadata(
    tenant: str, artifact_id: str, response: dict[str, Any], size: int
) -> ArtifactMeta:
    raw = {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}

    def field(name: str) -> str | None:
        return raw.get(_META + name) or None

    created = field("created")
    expires = field("expires")
    name = field("name")
    if field("tenant") not in (None, tenant):  # a key outside its tenant's namespace
        raise DependencyError(f"{DEPENDENCY}: object {artifact_id} belongs to another tenant")
    return ArtifactMeta(
        id=artifact_id,
        tenant=tenant,
        kind=ArtifactKind(field("kind") or ArtifactKind.ATTACHMENT.value),
        content_type=str(response.get("ContentType") or "application/octet-stream"),
        size=size,
        created_at=(
            datetime.fromisoformat(created) if created else response.get("LastModified", 0)
        ),
        expires_at=datetime.fromisoformat(expires) if expires else None,
        session_id=field("session"),
        name=unquote(name) if name else None,
        sha256=field("sha256"),
    )
