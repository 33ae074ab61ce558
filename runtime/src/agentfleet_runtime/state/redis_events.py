"""Session events on Redis: a bounded Redis Stream per session (the durable log clients
resume from) plus Pub/Sub (live delivery to every replica).

``append`` is one Lua script, so it is atomic: it checks the lease fence, takes the next
id (the stream's last id + 1: ids are 1, 2, 3... per session and the stream entry id is
``<id>-0``), skips a retried append it already recorded (same turn and per-turn sequence
number), XADDs with ``MAXLEN ~ <events_max_len>``, refreshes the session TTL and PUBLISHes
the event on the session's channel. Because XADD and PUBLISH happen in the same step, a
reader that subscribes first and then reads the stream sees every event exactly once.

Each process has one :class:`RedisEventHub`: one Pub/Sub connection subscribed to the
channels of the sessions that have followers in this process (reference counted), plus
the tenant's control channel. If that connection breaks it reconnects with backoff,
resubscribes and makes every follower re-read the stream from its last id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.state.base import LeaseLostError
from agentfleet_runtime.state.fanout import Fanout, follow
from agentfleet_runtime.state.redis_client import Keys, text, translate_errors

log = logging.getLogger(__name__)

_APPEND = """
if ARGV[7] ~= '' then
  if redis.call('GET', KEYS[2]) ~= ARGV[7] then return {-1, ''} end
end
local id = 1
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  local entry = last[1]
  id = tonumber(string.match(entry[1], '^(%d+)')) + 1
  local f = entry[2]
  if ARGV[3] ~= '' and f[4] == ARGV[2] and f[6] ~= '' and tonumber(f[6]) >= tonumber(ARGV[3]) then
    return {0, f[2]}
  end
end
local ev = '{"id":' .. id .. ',' .. string.sub(ARGV[1], 2)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], id .. '-0', 'e', ev, 't', ARGV[2], 'n', ARGV[3])
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
redis.call('PUBLISH', ARGV[6], ev)
return {1, ev}
"""


def _decode(raw: bytes | str) -> TurnEvent:
    event: TurnEvent = json.loads(raw)
    return event


class RedisEventHub:
    """The process's Pub/Sub connection: live events for local followers, and control
    messages (``on_control``) for the dispatcher."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        on_control: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._r = client
        self._k = keys
        self.fanout = Fanout(on_first=self._subscribe, on_last=self._unsubscribe_later)
        self.on_control = on_control
        self._pubsub: PubSub | None = None
        self._channels: set[str] = set()
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconnected = False

    async def start(self) -> None:
        await self._connect()
        self._reader = asyncio.create_task(self._read_loop(), name="redis event hub")

    async def aclose(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def publish_control(self, message: dict[str, Any]) -> None:
        await self._r.publish(self._k.control, json.dumps(message))

    async def _connect(self) -> None:
        pubsub = self._r.pubsub()
        channels = [self._k.control, *self._channels]
        await pubsub.subscribe(*channels)
        # redis-py reconnects a broken Pub/Sub connection by itself and resubscribes:
        # hear about it, so followers re-read what was published meanwhile.
        connection: Any = pubsub.connection
        connection.register_connect_callback(self._on_pubsub_connect)
        self._pubsub = pubsub
        self._ready.set()

    async def _on_pubsub_connect(self, _connection: object) -> None:
        self._reconnected = True

    async def _subscribe(self, session_id: str) -> None:
        channel = self._k.channel(session_id)
        async with self._lock:
            if channel in self._channels:
                return
            self._channels.add(channel)
            if not self._ready.is_set():
                # Reconnecting (Redis unavailable): the reconnect subscribes to every
                # channel and makes followers re-read the log; meanwhile they get what
                # this process appends (the degraded mode publishes it locally).
                return
            assert self._pubsub is not None
            waiter = asyncio.get_running_loop().create_future()
            self._confirm[channel] = waiter
            try:
                await self._pubsub.subscribe(channel)
                await asyncio.wait_for(asyncio.shield(waiter), timeout=10)
            except (RedisConnectionError, RedisTimeoutError):
                return  # the connection broke: the read loop reconnects, as above
            except BaseException:
                self._channels.discard(channel)
                raise
            finally:
                self._confirm.pop(channel, None)

    def _unsubscribe_later(self, session_id: str) -> None:
        if self._closing:
            return
        task = asyncio.create_task(self._unsubscribe(session_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unsubscribe(self, session_id: str) -> None:
        channel = self._k.channel(session_id)
        async with self._lock:
            if self.fanout.count(session_id) or channel not in self._channels:
                return
            self._channels.discard(channel)
            if self._pubsub is not None:
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                    await self._pubsub.unsubscribe(channel)

    async def _read_loop(self) -> None:
        delay = 0.05
        while True:
            try:
                assert self._pubsub is not None
                message = await self._pubsub.get_message(timeout=None)
                delay = 0.05
                if message is not None:
                    self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: reconnect, resubscribe, resync
                log.warning("redis pubsub connection lost, reconnecting", extra={"error": str(exc)})
                self._ready.clear()
                with contextlib.suppress(Exception):
                    if self._pubsub is not None:
                        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                while True:
                    await asyncio.sleep(random.uniform(0, delay))
                    delay = min(delay * 2, 2.0)
                    try:
                        await self._connect()
                        break
                    except Exception:
                        continue
                self.fanout.resync_all()
                if self.on_control is not None:
                    self.on_control({"type": "reconnected"})

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = text(message.get("channel"))
        if kind in (b"subscribe", "subscribe"):
            waiter = self._confirm.get(str(channel))
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            elif self._reconnected:  # resubscribed after a reconnect: events may be lost
                if channel == self._k.control:
                    if self.on_control is not None:
                        self.on_control({"type": "reconnected"})
                else:
                    prefix = self._k.channel("")
                    self.fanout.resync(str(channel).removeprefix(prefix))
            return
        if kind not in (b"message", "message"):
            return
        if channel == self._k.control:
            if self.on_control is not None:
                with contextlib.suppress(ValueError):
                    self.on_control(json.loads(message["data"]))
            return
        self.fanout.publish(_decode(message["data"]))


class RedisEventLog:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        hub: RedisEventHub,
        *,
        max_events: int = 10_000,
        ttl_seconds: int = 0,
    ) -> None:
        self._r = client
        self._k = keys
        self._hub = hub
        self._max = max_events
        self._ttl_ms = ttl_seconds * 1000
        self._append = client.register_script(_APPEND)

    @translate_errors
    async def append(
        self,
        session_id: str,
        turn_id: str,
        type_: str,
        data: dict[str, Any],
        *,
        seq: int | None = None,
        fence: str | None = None,
        ts: float | None = None,
    ) -> TurnEvent:
        """``ts``: when the event happened (default now; the degraded mode's resync keeps
        the time an event was recorded in memory)."""
        body = json.dumps(
            {
                "type": type_,
                "session_id": session_id,
                "turn_id": turn_id,
                "data": data,
                "ts": time.time() if ts is None else ts,
            },
            separators=(",", ":"),
        )
        status, raw = await self._append(
            keys=[self._k.events(session_id), self._k.lease(session_id)],
            args=[
                body,
                turn_id,
                "" if seq is None else seq,
                self._max,
                self._ttl_ms,
                self._k.channel(session_id),
                fence or "",
            ],
        )
        if status == -1:
            raise LeaseLostError(
                f"session {session_id} is leased by another replica", session=session_id
            )
        return _decode(raw)

    @translate_errors
    async def read(
        self, session_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[TurnEvent]:
        entries: Any = await self._r.xrange(
            self._k.events(session_id), min=f"{after + 1}-0", max="+", count=limit
        )
        return [_decode(fields[b"e"]) for _, fields in entries]

    @translate_errors
    async def last_id(self, session_id: str) -> int:
        entries: Any = await self._r.xrevrange(self._k.events(session_id), count=1)
        if not entries:
            return 0
        return int(text(entries[0][0]).split("-")[0])

    async def _read_page(self, session_id: str, after: int, limit: int) -> list[TurnEvent]:
        return await self.read(session_id, after=after, limit=limit)

    def follow(self, session_id: str, *, after: int = 0) -> AsyncIterator[TurnEvent]:
        return follow(self._hub.fanout, self._read_page, session_id, after=after)

    @translate_errors
    async def delete(self, session_id: str) -> None:
        await self._r.delete(self._k.events(session_id))
