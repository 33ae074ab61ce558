"""Process-local fan-out of session events to followers, and the one ``follow`` algorithm
both backends share.

A backend delivers each new event once per process (memory: directly from ``append``;
Redis: from the process's one Pub/Sub connection) to :meth:`Fanout.publish`, which offers
it to every local follower of the session. A follower's buffer is bounded: when a follower
falls behind (a slow WebSocket client) its buffer stops taking events and it reads what it
missed from the durable log instead — memory stays bounded and nothing is lost. Because
ids are contiguous per session, a follower also notices any event the transport lost
(``id > last + 1``) and reads the gap from the log.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from agentfleet_runtime.agent.events import TurnEvent

#: How many events a follower buffers before it falls back to reading the log.
FOLLOWER_BUFFER = 256
#: Events read from the log per round trip while catching up.
PAGE = 500


class Follower:
    __slots__ = ("buffer", "lagging", "limit", "session_id", "wakeup")

    def __init__(self, session_id: str, limit: int) -> None:
        self.session_id = session_id
        self.buffer: deque[TurnEvent] = deque()
        self.limit = limit
        self.lagging = False
        self.wakeup = asyncio.Event()

    def offer(self, event: TurnEvent) -> None:
        if len(self.buffer) >= self.limit:
            self.lagging = True
        else:
            self.buffer.append(event)
        self.wakeup.set()

    def resync(self) -> None:
        """The transport may have lost events: read the log before trusting it again."""
        self.lagging = True
        self.wakeup.set()


class Fanout:
    """Followers per session in this process. ``on_first``/``on_last`` run when a session
    gets its first follower / loses its last one (Redis: SUBSCRIBE / UNSUBSCRIBE)."""

    def __init__(
        self,
        *,
        on_first: Callable[[str], Awaitable[None]] | None = None,
        on_last: Callable[[str], None] | None = None,
        buffer: int = FOLLOWER_BUFFER,
    ) -> None:
        self._followers: dict[str, set[Follower]] = {}
        self._on_first = on_first
        self._on_last = on_last
        self._buffer = buffer

    def publish(self, event: TurnEvent) -> None:
        for follower in self._followers.get(event["session_id"], ()):
            follower.offer(event)

    def resync_all(self) -> None:
        for followers in self._followers.values():
            for follower in followers:
                follower.resync()

    def resync(self, session_id: str) -> None:
        for follower in self._followers.get(session_id, ()):
            follower.resync()

    def sessions(self) -> list[str]:
        return list(self._followers)

    def count(self, session_id: str) -> int:
        return len(self._followers.get(session_id, ()))

    async def register(self, session_id: str) -> Follower:
        follower = Follower(session_id, self._buffer)
        first = session_id not in self._followers
        self._followers.setdefault(session_id, set()).add(follower)
        if first and self._on_first is not None:
            try:
                await self._on_first(session_id)
            except BaseException:
                self.unregister(follower)
                raise
        return follower

    def unregister(self, follower: Follower) -> None:
        followers = self._followers.get(follower.session_id)
        if followers is None:
            return
        followers.discard(follower)
        if not followers:
            del self._followers[follower.session_id]
            if self._on_last is not None:
                self._on_last(follower.session_id)


ReadLog = Callable[[str, int, int], Awaitable[list[TurnEvent]]]


async def follow(
    fanout: Fanout, read: ReadLog, session_id: str, *, after: int = 0
) -> AsyncIterator[TurnEvent]:
    """Events of ``session_id`` after ``after``: the kept history first, then live ones —
    in order, without gaps the log can fill and without duplicates.

    Registering before reading the history closes the race with concurrent appends: an
    event is either already in the log when it is read, or it arrives live afterwards.
    """
    follower = await fanout.register(session_id)
    cursor = after
    try:
        catch_up = True
        while True:
            if catch_up:
                follower.lagging = False
                follower.buffer.clear()
                while True:
                    page = await read(session_id, cursor, PAGE)
                    for event in page:
                        if event["id"] > cursor:
                            cursor = event["id"]
                            yield event
                    if len(page) < PAGE:
                        break
                catch_up = False
            while not follower.buffer and not follower.lagging:
                follower.wakeup.clear()
                await follower.wakeup.wait()
            if follower.lagging:
                catch_up = True
                continue
            event = follower.buffer.popleft()
            if event["id"] <= cursor:
                continue
            if event["id"] > cursor + 1:  # the transport lost some: the log has them
                follower.buffer.appendleft(event)
                catch_up = True
                continue
            cursor = event["id"]
            yield event
    finally:
        fanout.unregister(follower)
