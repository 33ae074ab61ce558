"""Tenants: every stored object (API-created agents, sessions and everything under them,
dead letters, API keys) belongs to one; a caller sees only its own tenant's. The tenant
comes from the caller's identity (its API key, a JWT claim, a static token's setting;
``default`` when authentication is off)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, Field

from agentfleet_runtime.auth.settings import TENANT_PATTERN
from agentfleet_runtime.errors import AgentfleetError
from agentfleet_runtime.state.base import utcnow
from agentfleet_runtime.state.quotas import QuotaStore

log = logging.getLogger(__name__)

TenantId = Annotated[str, Field(min_length=1, max_length=63, pattern=TENANT_PATTERN)]


class TenantQuotas(BaseModel):
    """Limits of one tenant (``None``: the runtime's default from the settings)."""

    max_sessions: int | None = Field(default=None, ge=0, description="Sessions kept at once")
    max_concurrent_turns: int | None = Field(
        default=None, ge=1, description="Turns running at the same time"
    )
    requests_per_minute: int | None = Field(
        default=None, ge=1, description="REST requests per minute across all its keys"
    )
    tokens_per_day: int | None = Field(
        default=None,
        ge=1,
        description="Model tokens (input + output) per UTC day; counted when a turn ends",
    )
    max_websockets: int | None = Field(
        default=None,
        ge=1,
        description="WebSocket connections open at once, per replica (beyond it: close 1008)",
    )


class TenantRecord(BaseModel):
    id: TenantId
    display_name: str | None = None
    quotas: TenantQuotas = Field(default_factory=TenantQuotas)
    created_at: datetime = Field(default_factory=utcnow)


class TenantStore(Protocol):
    async def put(self, record: TenantRecord) -> None: ...
    async def get(self, tenant_id: str) -> TenantRecord | None: ...
    async def list(self) -> list[TenantRecord]: ...
    async def delete(self, tenant_id: str) -> bool: ...


class TenantQuotaExceededError(AgentfleetError):
    """A tenant quota is used up (HTTP 429 with the quota's name and limit)."""

    status = 429
    slug = "quota-exceeded"
    title = "Tenant quota exceeded"

    def __init__(self, detail: str, *, quota: str, limit: int, used: int, **extra: object) -> None:
        super().__init__(detail, quota=quota, limit=limit, used=used, **extra)


QuotaName = Literal[
    "max_sessions",
    "max_concurrent_turns",
    "requests_per_minute",
    "tokens_per_day",
    "max_websockets",
]


class TenantQuotaGuard:
    """Enforces tenant quotas: a tenant's own (its :class:`TenantRecord`), else the
    runtime's defaults (``AGENTFLEET_TENANCY__DEFAULT_QUOTAS__*``). Counters and locks
    live in the state backend, so on Redis the limits hold across replicas.

    * ``max_sessions``: :meth:`session_slot` counts and creates under a per-tenant lock,
      so concurrent creations cannot overshoot.
    * ``tokens_per_day``: :meth:`check_tokens` refuses a new turn once the tenant's
      tokens of the current UTC day reached the limit; :meth:`add_tokens` counts a turn's
      usage when it ends (so the turn that crosses the limit finishes; the next is
      refused until midnight UTC).
    * ``max_concurrent_turns``: :meth:`take_turn` reserves a slot when a turn is
      accepted (atomically: a counter of turn ids in the state backend) and
      :meth:`release_turns` frees it when the turn ends; a slot held by a replica that
      died expires after ``turn_slot_seconds`` (refreshed each time a turn starts).
    * ``requests_per_minute``: read by the API rate limiter (:meth:`limit`).
    * ``max_websockets``: read by the WebSocket admission (:meth:`limit`), which counts a
      tenant's open connections in this replica's
      :class:`~agentfleet_runtime.realtime.hub.ConnectionHub` (per replica, not shared).
    """

    def __init__(
        self,
        tenants: TenantStore,
        defaults: TenantQuotas,
        store: QuotaStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        turn_slot_seconds: float = 3600.0,
    ) -> None:
        self._tenants = tenants
        self._defaults = defaults
        self._store = store
        self._clock = clock
        self.turn_slot_seconds = turn_slot_seconds

    async def limit(self, tenant: str, quota: QuotaName) -> int | None:
        record = await self._tenants.get(tenant)
        own: int | None = getattr(record.quotas, quota) if record is not None else None
        return own if own is not None else getattr(self._defaults, quota)

    async def check(self, tenant: str, quota: QuotaName, used: int) -> None:
        """Refuse when ``used`` (counted by the caller) reached the quota."""
        limit = await self.limit(tenant, quota)
        if limit is not None and used >= limit:
            # a running turn ends soon: retry shortly (the others are longer-lived)
            extra = {"retry_after": 1.0} if quota == "max_concurrent_turns" else {}
            raise TenantQuotaExceededError(
                f"tenant {tenant!r} has reached its {quota} quota ({limit})",
                quota=quota,
                limit=limit,
                used=used,
                **extra,
            )

    @contextlib.asynccontextmanager
    async def session_slot(
        self, tenant: str, count: Callable[[], Awaitable[int]]
    ) -> AsyncIterator[None]:
        """The block creates one session of ``tenant`` if its ``max_sessions`` quota
        allows: ``count()`` (the sessions it has) is checked and the block runs while the
        tenant's quota lock is held (only when the tenant has a limit)."""
        if await self.limit(tenant, "max_sessions") is None:
            yield
            return
        async with self._store.lock(f"sessions:{tenant}"):
            await self.check(tenant, "max_sessions", await count())
            yield

    def _day(self) -> tuple[str, datetime]:
        now = self._clock()
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return now.strftime("%Y-%m-%d"), midnight

    async def check_tokens(self, tenant: str) -> None:
        """Refuse a new turn when the tenant used up today's tokens (429 with when the
        quota resets, and ``Retry-After``)."""
        limit = await self.limit(tenant, "tokens_per_day")
        if limit is None:
            return
        day, resets = self._day()
        used = await self._store.get(f"tokens:{tenant}:{day}")
        if used >= limit:
            raise TenantQuotaExceededError(
                f"tenant {tenant!r} has used its tokens_per_day quota ({used} of {limit} "
                f"tokens today); it resets at {resets.isoformat()}",
                quota="tokens_per_day",
                limit=limit,
                used=used,
                resets_at=resets.isoformat(),
                retry_after=max(1.0, (resets - self._clock()).total_seconds()),
            )

    async def add_tokens(self, tenant: str, tokens: int) -> int:
        """Count a finished turn's tokens for today (kept two days, then expired)."""
        day, _ = self._day()
        if tokens <= 0:
            return await self._store.get(f"tokens:{tenant}:{day}")
        return await self._store.add(f"tokens:{tenant}:{day}", tokens, ttl_seconds=2 * 86_400)

    async def tokens_used(self, tenant: str) -> int:
        day, _ = self._day()
        return await self._store.get(f"tokens:{tenant}:{day}")

    async def take_turn(self, tenant: str, holder: str, *, refresh: bool = False) -> None:
        """Reserve one of the tenant's ``max_concurrent_turns`` slots for ``holder``
        (``<session id>/<turn id>``), or refuse (429 ``quota-exceeded``). ``refresh``: the
        turn was accepted already (a start, a recovery): renew its slot, never refuse."""
        limit = await self.limit(tenant, "max_concurrent_turns")
        if limit is None:
            return
        taken, used = await self._store.take_slot(
            f"turns:{tenant}",
            holder,
            limit=None if refresh else limit,
            ttl_seconds=self.turn_slot_seconds,
        )
        if not taken:
            raise TenantQuotaExceededError(
                f"tenant {tenant!r} has {used} turns running, its max_concurrent_turns quota "
                f"({limit}); retry when one ends",
                quota="max_concurrent_turns",
                limit=limit,
                used=used,
                retry_after=1.0,
            )

    async def release_turns(self, tenant: str, prefix: str) -> None:
        """Free the slots of ``tenant`` held by ``prefix`` (a turn: ``<session>/<turn>``;
        every turn of a session: ``<session>/``). Never raises: a slot not freed
        expires by itself."""
        try:
            await self._store.release_slots(f"turns:{tenant}", prefix)
        except Exception:
            log.warning("could not free a turn slot", exc_info=True, extra={"tenant": tenant})

    async def turns_running(self, tenant: str) -> int:
        """Slots held now (0 when the tenant has no ``max_concurrent_turns`` quota)."""
        if await self.limit(tenant, "max_concurrent_turns") is None:
            return 0
        _, used = await self._store.take_slot(  # a limit of 0 counts, never takes
            f"turns:{tenant}", "", limit=0, ttl_seconds=self.turn_slot_seconds
        )
        return used
