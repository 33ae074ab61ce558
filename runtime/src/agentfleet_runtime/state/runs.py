"""Runs: the record of each turn — status, steps, tool calls, tokens, model, timing and
error — kept as its own resource (``/api/v1/runs``).

The runtime writes a run when a message is accepted (``queued``), when its turn starts
(``running``) and when it ends (``completed``, ``failed``, or ``dead-lettered`` when the
failure was recorded as a dead letter): whole-record writes, no read-modify-write, so
the turn's path pays one cheap write at its start and one at its end. A run's id is its
turn's id.

Bounded like sessions: at most ``max_per_session`` runs per session (the oldest go
first), expired with the session's TTL on Redis, and deleted with their session.

Redis layout (``<p>`` = ``<prefix>:<tenant>``):

==========================  ========  =================================================
``<p>:run:<run id>``        STRING    RunRecord JSON, expires after the session TTL
``<p>:s:{<sid>}:runs``      ZSET      the session's run ids, scored by creation time
``<p>:runs``                ZSET      every run id, scored by creation time (an index;
                                      ids whose record expired are dropped when listed)
==========================  ========  =================================================
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from agentfleet_runtime.state.base import utcnow
from agentfleet_runtime.state.redis_client import Keys, text, translate_errors

#: Runs kept per session unless configured otherwise.
DEFAULT_MAX_RUNS_PER_SESSION = 1_000


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    #: Failed, and recorded as a dead letter (``dead_letter_id``) to replay or discard.
    DEAD_LETTERED = "dead-lettered"


#: Statuses after which a run does not change any more.
FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.DEAD_LETTERED})


class TokenUsage(BaseModel):
    """Model tokens a turn used (summed over its model calls): in its result and its run."""

    input_tokens: int = 0
    output_tokens: int = 0


class RunToolCall(BaseModel):
    """A tool call of the run (its result is in the session's ``tool.result`` event)."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    is_error: bool = False


class RunError(BaseModel):
    """Why a run failed: its RFC 9457 problem ``type`` and ``detail``."""

    type: str
    title: str
    detail: str
    retryable: bool = False
    #: A finer cause where there is one (``recovery-exhausted``...).
    reason: str | None = None


class RunRecord(BaseModel):
    """One turn. Times are UTC; ``duration_ms`` is the turn's own run time (queueing not
    included: compare ``created_at`` and ``started_at`` for that)."""

    id: str
    session_id: str
    agent: str
    tenant: str = "default"
    status: RunStatus = RunStatus.QUEUED
    #: The model that gave the last answer (``provider/name``; a fallback when it
    #: answered instead of the agent's model).
    model: str | None = None
    #: 1, or more when the turn was recovered after its replica went away.
    attempt: int = 1
    steps: int = 0
    tool_calls: list[RunToolCall] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    duration_ms: float | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: RunError | None = None
    #: Set when the answer was degraded (no model could answer, or its stream broke).
    degraded: dict[str, Any] | None = None
    dead_letter_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs to list; ``None``: any. Created in ``[created_after, created_before)``."""

    tenant: str | None = None
    session_id: str | None = None
    agent: str | None = None
    status: RunStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def matches(self, record: RunRecord) -> bool:
        return (
            (self.tenant is None or record.tenant == self.tenant)
            and (self.session_id is None or record.session_id == self.session_id)
            and (self.agent is None or record.agent == self.agent)
            and (self.status is None or record.status is self.status)
            and (self.created_after is None or record.created_at >= self.created_after)
            and (self.created_before is None or record.created_at < self.created_before)
        )


#: Every run.
ANY_RUN = RunFilter()


class RunStore(Protocol):
    async def put(self, record: RunRecord) -> None:
        """Write the whole record (the caller does not change it afterwards)."""
        ...

    async def create(self, record: RunRecord) -> bool:
        """Write the record unless the run exists (a ``queued`` record must never
        overwrite the ``running`` one of a turn that started first); True if written."""
        ...

    async def get(self, run_id: str) -> RunRecord | None: ...

    async def list(self, where: RunFilter = ANY_RUN) -> list[RunRecord]:
        """The runs ``where`` matches, oldest first."""
        ...

    async def delete_session(self, session_id: str) -> None:
        """Forget every run of the session."""
        ...


class MemoryRunStore:
    """Runs of one process. Records are stored as given (the writer builds a new record
    for every change) and copied on the way out."""

    def __init__(self, *, max_per_session: int = DEFAULT_MAX_RUNS_PER_SESSION) -> None:
        self._max = max_per_session
        self._runs: dict[str, RunRecord] = {}
        self._by_session: dict[str, OrderedDict[str, None]] = {}

    async def create(self, record: RunRecord) -> bool:
        if record.id in self._runs:
            return False
        await self.put(record)
        return True

    async def put(self, record: RunRecord) -> None:
        ids = self._by_session.setdefault(record.session_id, OrderedDict())
        if record.id not in ids:
            ids[record.id] = None
            while len(ids) > self._max:
                oldest, _ = ids.popitem(last=False)
                self._runs.pop(oldest, None)
        self._runs[record.id] = record

    async def get(self, run_id: str) -> RunRecord | None:
        record = self._runs.get(run_id)
        return record.model_copy(deep=True) if record is not None else None

    async def list(self, where: RunFilter = ANY_RUN) -> list[RunRecord]:
        if where.session_id is not None:
            candidates = [self._runs[i] for i in self._by_session.get(where.session_id, ())]
        else:
            candidates = list(self._runs.values())
        found = [r.model_copy(deep=True) for r in candidates if where.matches(r)]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def delete_session(self, session_id: str) -> None:
        for run_id in self._by_session.pop(session_id, ()):
            self._runs.pop(run_id, None)


class RedisRunStore:
    """Runs on Redis, shared by every replica (key layout in the module docstring)."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        ttl_seconds: int = 0,
        max_per_session: int = DEFAULT_MAX_RUNS_PER_SESSION,
    ) -> None:
        self._r = client
        self._base = keys.base
        self._index = f"{keys.base}:runs"
        self._ttl = ttl_seconds or None
        self._max = max_per_session

    def _record(self, run_id: str) -> str:
        return f"{self._base}:run:{run_id}"

    def _session(self, session_id: str) -> str:
        return f"{self._base}:s:{{{session_id}}}:runs"

    @translate_errors
    async def put(self, record: RunRecord) -> None:
        await self._write(record, only_new=False)

    @translate_errors
    async def create(self, record: RunRecord) -> bool:
        return await self._write(record, only_new=True)

    async def _write(self, record: RunRecord, *, only_new: bool) -> bool:
        score = record.created_at.timestamp()
        session_key = self._session(record.session_id)
        # One round trip; every step is idempotent (a retried put writes the same).
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.set(self._record(record.id), record.model_dump_json(), ex=self._ttl, nx=only_new)
            pipe.zadd(session_key, {record.id: score})
            if self._ttl is not None:
                pipe.expire(session_key, self._ttl)
            pipe.zadd(self._index, {record.id: score})
            pipe.zcard(session_key)
            replies = await pipe.execute()
        if int(replies[-1]) > self._max:
            await self._trim(session_key)
        return bool(replies[0])

    async def _trim(self, session_key: str) -> None:
        excess = await self._r.zrange(session_key, 0, -(self._max + 1))
        if not excess:
            return
        ids = [text(i) for i in excess]
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zrem(session_key, *ids)
            pipe.zrem(self._index, *ids)
            pipe.delete(*(self._record(i) for i in ids))
            await pipe.execute()

    @translate_errors
    async def get(self, run_id: str) -> RunRecord | None:
        raw = await self._r.get(self._record(run_id))
        return RunRecord.model_validate_json(raw) if raw is not None else None

    @translate_errors
    async def list(self, where: RunFilter = ANY_RUN) -> list[RunRecord]:
        index = self._index if where.session_id is None else self._session(where.session_id)
        after, before = where.created_after, where.created_before
        low = after.timestamp() if after is not None else "-inf"
        high = f"({before.timestamp()}" if before is not None else "+inf"
        # the window is the index's (by score): the records are matched on the rest
        rest = replace(where, created_after=None, created_before=None)
        ids = [text(i) for i in await self._r.zrangebyscore(index, low, high)]
        records: list[RunRecord] = []
        expired: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            values = await self._r.mget([self._record(i) for i in chunk])
            for run_id, raw in zip(chunk, values, strict=True):
                if raw is None:
                    expired.append(run_id)
                    continue
                record = RunRecord.model_validate_json(raw)
                if rest.matches(record):
                    records.append(record)
        if expired:  # the record expired (session TTL): drop it from the index too
            await self._r.zrem(index, *expired)
        return sorted(records, key=lambda r: (r.created_at, r.id))

    @translate_errors
    async def delete_session(self, session_id: str) -> None:
        session_key = self._session(session_id)
        ids = [text(i) for i in await self._r.zrange(session_key, 0, -1)]
        async with self._r.pipeline(transaction=False) as pipe:
            if ids:
                pipe.delete(*(self._record(i) for i in ids))
                pipe.zrem(self._index, *ids)
            pipe.delete(session_key)
            await pipe.execute()
