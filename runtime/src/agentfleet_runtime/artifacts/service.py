"""``ArtifactService``: what the runtime does with artifacts, over any
:class:`~agentfleet_runtime.artifacts.base.ArtifactStore` — ids, expiry from the retention
of each kind, the per-tenant byte quota, metrics, error mapping, and the retention sweep.

Failures reach callers as the errors of :mod:`.errors`: a store that still fails after the
pipeline's retries (or whose breaker is open) is :class:`ArtifactStoreUnavailableError`
(503, ``Retry-After``); quota, size and permission errors keep their own types.

The quota is checked against the tenant's stored bytes (a listing) before each put; two
concurrent puts may both pass and overshoot it by at most one artifact each.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from agentfleet_runtime.artifacts import metrics
from agentfleet_runtime.artifacts.base import (
    ArtifactKind,
    ArtifactMeta,
    ArtifactStore,
    new_artifact_id,
    valid_artifact_id,
)
from agentfleet_runtime.artifacts.errors import (
    DEPENDENCY,
    ArtifactQuotaExceededError,
    ArtifactStoreDeniedError,
    ArtifactStoreUnavailableError,
    ArtifactTooLargeError,
)
from agentfleet_runtime.artifacts.settings import ArtifactSettings
from agentfleet_runtime.errors import (
    AgentfleetError,
    CallRefusedError,
    DependencyError,
    NotFoundError,
)

__all__ = ["ArtifactService"]

log = logging.getLogger(__name__)

#: Expired artifacts deleted per round of a sweep (rounds repeat while they find some).
SWEEP_BATCH = 1000


class ArtifactService:
    def __init__(
        self,
        store: ArtifactStore,
        settings: ArtifactSettings | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings or ArtifactSettings()
        self._now = now
        self._sweeper: asyncio.Task[None] | None = None

    # -- operations -----------------------------------------------------------------------

    def expiry(self, kind: ArtifactKind, created: datetime) -> datetime | None:
        days: int = getattr(self.settings.retention_days, kind.value.replace("-", "_"))
        return None if days == 0 else created + timedelta(days=days)

    async def put(
        self,
        tenant: str,
        data: bytes,
        *,
        kind: ArtifactKind,
        content_type: str,
        session_id: str | None = None,
        name: str | None = None,
        max_size: int | None = None,
    ) -> ArtifactMeta:
        """Store ``data`` for ``tenant``; its metadata (with the new id)."""
        size = len(data)
        if max_size is not None and size > max_size:
            self._count("put", "too_large")
            raise ArtifactTooLargeError(
                f"the artifact is {size} bytes; at most {max_size} are accepted",
                size=size,
                limit=max_size,
            )
        created = self._now().replace(microsecond=0)
        expires = self.expiry(kind, created)
        meta = ArtifactMeta(
            id=new_artifact_id(expires),
            tenant=tenant,
            kind=kind,
            content_type=content_type,
            size=size,
            created_at=created,
            expires_at=expires,
            session_id=session_id,
            name=name[:255] if name else None,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        async with self._guard("put"):
            quota = self.settings.max_bytes_per_tenant
            if quota is not None:
                used = await self.store.usage(tenant)
                if used + size > quota:
                    raise ArtifactQuotaExceededError(
                        f"tenant {tenant!r} stores {used} bytes of its {quota}-byte artifact "
                        f"quota; {size} more bytes do not fit. Delete artifacts or wait for "
                        "them to expire.",
                        used=used,
                        quota=quota,
                        size=size,
                    )
            await self.store.put(meta, data)
        metrics.BYTES_STORED.labels(self.store.name, kind.value).inc(size)
        log.info(
            "artifact stored",
            extra={"artifact": meta.id, "tenant": tenant, "kind": kind.value, "size": size},
        )
        return meta

    async def get(self, tenant: str, artifact_id: str) -> tuple[ArtifactMeta, bytes]:
        """The artifact and its bytes; :class:`NotFoundError` when ``tenant`` has no such
        artifact (another tenant's included) or it expired."""
        self._check_id(artifact_id, "get")
        async with self._guard("get"):
            found = await self.store.get(tenant, artifact_id)
        if found is None or found[0].expired(self._now()):
            raise self._not_found(artifact_id, "get")
        return found

    async def head(self, tenant: str, artifact_id: str) -> ArtifactMeta:
        self._check_id(artifact_id, "head")
        async with self._guard("head"):
            meta = await self.store.head(tenant, artifact_id)
        if meta is None or meta.expired(self._now()):
            raise self._not_found(artifact_id, "head")
        return meta

    async def delete(self, tenant: str, artifact_id: str) -> None:
        await self.head(tenant, artifact_id)  # 404 for what the tenant cannot see
        async with self._guard("delete"):
            await self.store.delete(tenant, artifact_id)

    # -- retention ------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete every artifact expired by now; how many were deleted."""
        deleted = 0
        now = self._now()
        async with self._guard("sweep"):
            while True:
                expired = await self.store.list_expired(now, limit=SWEEP_BATCH)
                for tenant, artifact_id in expired:
                    await self.store.delete(tenant, artifact_id)
                deleted += len(expired)
                if len(expired) < SWEEP_BATCH:
                    break
        if deleted:
            metrics.EXPIRED_DELETED.labels(self.store.name).inc(deleted)
            log.info("deleted %d expired artifacts", deleted)
        return deleted

    def start(self) -> None:
        """Sweep now (in the background) and every ``sweep_interval_seconds``."""
        if self.settings.sweep_interval_seconds > 0 and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="artifact retention sweep"
            )

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except AgentfleetError as exc:
                log.warning("artifact retention sweep failed: %s", exc.detail)
            except Exception:
                log.exception("artifact retention sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.store.aclose()

    # -- errors ---------------------------------------------------------------------------

    def _check_id(self, artifact_id: str, operation: str) -> None:
        if not valid_artifact_id(artifact_id):
            raise self._not_found(artifact_id, operation)

    def _not_found(self, artifact_id: str, operation: str) -> NotFoundError:
        self._count(operation, "not_found")
        return NotFoundError(f"no artifact {artifact_id!r}", artifact=artifact_id)

    def _count(self, operation: str, outcome: str) -> None:
        metrics.OPERATIONS.labels(self.store.name, operation, outcome).inc()

    @contextlib.asynccontextmanager
    async def _guard(self, operation: str) -> AsyncIterator[None]:
        """Count the operation and turn store failures into :mod:`.errors`."""
        try:
            yield
        except ArtifactQuotaExceededError:
            self._count(operation, "quota_exceeded")
            raise
        except ArtifactTooLargeError:
            self._count(operation, "too_large")
            raise
        except ArtifactStoreDeniedError:
            self._count(operation, "denied")
            raise
        except CallRefusedError as exc:
            self._count(operation, "unavailable")
            retry_after = getattr(exc, "retry_after", None)
            raise ArtifactStoreUnavailableError(
                f"the artifact store is not being called right now ({exc.detail})",
                retry_after=retry_after if retry_after is not None else 30.0,
                reason=exc.slug,
            ) from exc
        except DependencyError as exc:
            self._count(operation, "unavailable")
            attempts = exc.extensions.get("attempts")
            raise ArtifactStoreUnavailableError(
                f"the artifact store failed ({exc.detail})"
                + (f" after {attempts} attempts" if attempts else ""),
                reason=exc.slug,
                attempts=attempts,
            ) from exc
        except OSError as exc:  # the filesystem store
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._count(operation, "quota_exceeded")
                raise ArtifactQuotaExceededError(
                    f"{DEPENDENCY}: the artifact directory is full ({exc.strerror})"
                ) from exc
            self._count(operation, "unavailable")
            raise ArtifactStoreUnavailableError(
                f"the artifact store failed ({type(exc).__name__}: {exc})"
            ) from exc
        except NotFoundError:
            self._count(operation, "not_found")
            raise
        except BaseException:
            self._count(operation, "error")
            raise
        else:
            self._count(operation, "ok")
