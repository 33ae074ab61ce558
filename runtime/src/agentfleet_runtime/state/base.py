"""State ports: where agents, sessions, session events, queued turns, rate-limit counters
and circuit-breaker state live.

``memory`` (development default, one process) and ``redis`` (production, shared by every
replica) implement the same protocols and pass the same contract tests
(``tests/runtime/state``). Conversation *content* lives in the LangGraph checkpointer (one
thread per session); these stores hold everything else. :mod:`.factory` picks the backend
from the settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agentfleet_crds.v1alpha1.agent import AgentSpec
from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.errors import AgentfleetError, ConflictError


def utcnow() -> datetime:
    return datetime.now(UTC)


class AgentSource(StrEnum):
    """Where an agent definition came from. ``config`` (operator-rendered or manifests
    loaded at start) is read-only through the API; ``api`` agents can be changed."""

    CONFIG = "config"
    API = "api"


def agent_key(name: str, tenant: str | None) -> str:
    """Where an agent is stored: a shared agent under its name, a tenant's own under
    ``<tenant>/<name>`` (names are DNS labels, without ``/``), so that two tenants can
    each have an agent of the same name."""
    return name if tenant is None else f"{tenant}/{name}"


class AgentRecord(BaseModel):
    name: str
    namespace: str = "default"
    spec: AgentSpec
    source: AgentSource = AgentSource.API
    created_at: datetime = Field(default_factory=utcnow)
    #: The tenant an API-created agent belongs to; ``None``: shared by every tenant
    #: (agents from manifests / the operator's config, read-only).
    tenant: str | None = None

    @property
    def key(self) -> str:
        """The agent's key in the :class:`AgentStore` (see :func:`agent_key`)."""
        return agent_key(self.name, self.tenant)

    def visible_to(self, tenant: str) -> bool:
        return self.tenant is None or self.tenant == tenant


class SessionStatus(StrEnum):
    IDLE = "idle"
    RUNNING = "running"


class SessionRecord(BaseModel):
    id: str
    agent: str
    #: The tenant the session (and its messages, events, turns) belongs to.
    tenant: str = "default"
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    status: SessionStatus = SessionStatus.IDLE
    turns: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LeaseLostError(AgentfleetError):
    """This replica no longer holds the session's lease (another replica took the turn
    over): whatever it was doing for the session must stop. Writes are fenced."""

    status = 409
    slug = "lease-lost"
    title = "The session moved to another replica"


class IdempotencyConflictError(ConflictError):
    slug = "idempotency-key-reused"
    title = "Idempotency key reused with different content"


class AgentStore(Protocol):
    """Agents by key (:attr:`AgentRecord.key`: the name of a shared agent,
    ``<tenant>/<name>`` of a tenant's own)."""

    async def put(self, record: AgentRecord) -> None: ...
    async def get(self, key: str) -> AgentRecord | None: ...
    async def list(self) -> list[AgentRecord]: ...
    async def delete(self, key: str) -> bool: ...


class SessionStore(Protocol):
    async def put(self, record: SessionRecord) -> None: ...
    async def get(self, session_id: str) -> SessionRecord | None: ...
    async def list(
        self, *, agent: str | None = None, tenant: str | None = None
    ) -> list[SessionRecord]: ...
    async def delete(self, session_id: str) -> bool: ...

    async def update(
        self, session_id: str, change: Callable[[SessionRecord], None]
    ) -> SessionRecord | None:
        """Read, ``change`` in place, write back — atomically with respect to other
        writers (optimistic locking, retried on conflict). ``None`` if it does not exist."""
        ...


class EventLog(Protocol):
    """Per-session, append-only, bounded log of turn events. Ids are 1, 2, 3... per
    session: every id is used, so a jump tells a reader it missed something."""

    async def append(
        self,
        session_id: str,
        turn_id: str,
        type_: str,
        data: dict[str, Any],
        *,
        seq: int | None = None,
        fence: str | None = None,
    ) -> TurnEvent:
        """Record an event. ``seq`` (the event's number within its turn) makes a retried
        append idempotent; ``fence`` (a lease owner) refuses the append with
        :class:`LeaseLostError` unless that owner still holds the session's lease."""
        ...

    async def read(
        self, session_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[TurnEvent]: ...

    async def last_id(self, session_id: str) -> int:
        """The newest event id of the session (0 when there is none)."""
        ...

    def follow(self, session_id: str, *, after: int = 0) -> AsyncIterator[TurnEvent]:
        """Every event after ``after`` (missed ones first), then live ones, forever, in id
        order without duplicates. Where kept history was trimmed, ids jump."""
        ...

    async def delete(self, session_id: str) -> None: ...


class QueuedMessage(BaseModel):
    """A user message durably accepted for a session; it becomes turn ``turn_id``."""

    message_id: str
    turn_id: str
    session_id: str
    content: str
    idempotency_key: str
    accepted_at: float
    #: Stream model tokens as ``model.delta`` events while the turn runs.
    stream_tokens: bool = True


class Acceptance(BaseModel):
    message: QueuedMessage
    #: The idempotency key was seen before: nothing new was queued.
    duplicate: bool = False


class Claim(BaseModel):
    """A message handed to a lease owner to run. ``attempt`` > 1: the turn was in flight
    on a replica that went away (or handed it over) and is being recovered."""

    message: QueuedMessage
    attempt: int
    claim_id: str


class TurnQueue(Protocol):
    """Per-session inboxes of accepted messages, and per-session leases saying which
    replica runs a session's turns (one at a time, in order)."""

    async def accept(
        self,
        session_id: str,
        content: str,
        *,
        idempotency_key: str,
        message_id: str,
        stream_tokens: bool = True,
    ) -> Acceptance:
        """Queue a message once per ``idempotency_key`` (a resend returns the first
        acceptance with ``duplicate=True``)."""
        ...

    async def try_lease(self, session_id: str, owner: str, ttl: float) -> bool: ...

    async def renew(self, session_id: str, owner: str, ttl: float) -> bool: ...

    async def next(self, session_id: str, owner: str, ttl: float, claim_id: str) -> Claim | None:
        """The in-flight message (a recovery, ``attempt`` + 1) or else the next queued one;
        ``None`` when there is none, and then the lease is released in the same step (so a
        message accepted meanwhile is never stranded). :class:`LeaseLostError` if
        ``owner`` does not hold the lease."""
        ...

    async def finish(self, session_id: str, owner: str, claim_id: str) -> None:
        """The claimed turn ended (completed or failed): it leaves the in-flight slot."""
        ...

    async def release(self, session_id: str, owner: str) -> None:
        """Give the lease up, keeping queued and in-flight work for another replica."""
        ...

    async def pending(self, limit: int = 100) -> list[str]:
        """Sessions with queued or in-flight work (to claim those nobody leases)."""
        ...

    async def depth(self, session_id: str) -> int:
        """Messages queued (not counting the in-flight one)."""
        ...

    async def delete(self, session_id: str) -> None: ...


class RateDecision(BaseModel):
    allowed: bool
    #: Whole tokens left after this request.
    remaining: int
    #: Seconds until the request would be allowed (0 when allowed).
    retry_after: float


class RateLimitStore(Protocol):
    """Shared token buckets (for the resilience layer's rate limiters): every replica
    draws from the same bucket."""

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> RateDecision:
        """Take ``cost`` tokens from bucket ``key`` (refilled at ``rate`` per second up to
        ``burst``) if it has them."""
        ...

    async def reset(self, key: str) -> None: ...


class BreakerState(BaseModel):
    """A circuit breaker's shared state. ``version`` increases with every write."""

    state: str = "closed"
    failures: int = 0
    opened_at: float | None = None
    version: int = 0
    extra: dict[str, Any] = Field(default_factory=dict)


class BreakerStateStore(Protocol):
    """Shared circuit-breaker state (for the resilience layer): one breaker per dependency
    across replicas. Writes are compare-and-set on ``version``."""

    async def get(self, name: str) -> BreakerState: ...

    async def compare_and_set(self, name: str, expected_version: int, new: BreakerState) -> bool:
        """Write ``new`` (with ``version = expected_version + 1``) only if the stored
        version is still ``expected_version``."""
        ...

    async def update(
        self, name: str, change: Callable[[BreakerState], Awaitable[None] | None]
    ) -> BreakerState:
        """Read-modify-write under optimistic locking, retried (with a randomized delay)
        while other replicas write concurrently."""
        ...

    async def incr_failures(self, name: str) -> int: ...

    async def delete(self, name: str) -> None: ...
