"""The WebSocket side of the SDK: one connection that outlives network trouble.

* **Reconnects** with exponential backoff and full jitter (``random(0, min(cap,
  base·2ⁿ))``), rotating through ``urls`` (several replicas without a load balancer);
  a server that is draining (close 1012) is left at once for the next URL; one that is
  saturated (1013) too, and with a single URL, or over the tenant's connection quota
  (1008), the reconnect waits at least the close reason's ``retry-after=N``.
* **Resumes**: every subscribed session is resubscribed with its last event id, so the
  server sends what was missed, then live events; events already seen are dropped.
* **Re-authenticates**: on close 4401/4402 (bad or expired token) it asks the token
  provider for a new token before reconnecting.
* **Acknowledged sends**: a message stays in the outbox, with its idempotency key, until
  the server acknowledges it; it is resent after every reconnect and whenever an ack is
  overdue — the server runs it once per key.
* **Dead connections**: the server pings every ``heartbeat_interval``; if nothing arrives
  for twice that, the connection is treated as dead and replaced.
* **Local state** (:class:`SessionState`) survives disconnections and partitions, and is
  brought up to date by the resume on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agentfleet._auth import Credentials
from agentfleet.errors import MessageRejectedError, RealtimeClosedError
from agentfleet.models import Ack, Event
from agentfleet.protocol import (
    REAUTH_CLOSE_CODES,
    TERMINAL_CLOSE_CODES,
    CloseCode,
    retry_after_hint,
)

log = logging.getLogger(__name__)


@dataclass
class TurnView:
    """What a client knows of one turn."""

    turn_id: str
    status: str = "running"
    content: str = ""
    text: str = ""
    answer: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    attempts: int = 1


@dataclass
class SessionState:
    """The client's copy of a session, kept across disconnections."""

    session_id: str
    last_event_id: int = 0
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=1000))
    turns: dict[str, TurnView] = field(default_factory=dict)
    #: Ranges of events the server no longer had when we resumed: ``(after, next)``.
    gaps: list[tuple[int, int]] = field(default_factory=list)

    def apply(self, event: Event) -> bool:
        """Record an event; ``False`` for one already seen (a resume overlap)."""
        if event.id <= self.last_event_id:
            return False
        self.last_event_id = event.id
        self.events.append(event)
        turn = self.turns.setdefault(event.turn_id, TurnView(event.turn_id))
        data = event.data
        if event.type == "turn.started":
            turn.content = str(data.get("content", ""))
        elif event.type == "turn.resumed":  # rerun on another replica: restart the text
            turn.attempts = int(data.get("attempt", turn.attempts + 1))
            turn.text = ""
            turn.status = "running"
        elif event.type == "model.delta":
            turn.text += str(data.get("text", ""))
        elif event.type == "tool.call":
            turn.tool_calls.append(dict(data))
        elif event.type == "turn.completed":
            turn.status = "completed"
            turn.answer = str(data.get("answer", {}).get("content", ""))
        elif event.type == "turn.failed":
            turn.status = "failed"
            turn.error = dict(data)
        return True


@dataclass
class _Outgoing:
    session_id: str
    content: str
    key: str
    future: asyncio.Future[Ack]
    sent_at: float = 0.0


class RealtimeClient:
    def __init__(
        self,
        urls: str | list[str],
        credentials: Credentials,
        *,
        backoff_base: float = 0.1,
        backoff_max: float = 5.0,
        ack_timeout: float = 5.0,
        open_timeout: float = 5.0,
    ) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self._credentials = credentials
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ack_timeout = ack_timeout
        self.open_timeout = open_timeout
        self.sessions: dict[str, SessionState] = {}
        self.connected = asyncio.Event()
        #: How many connections were opened (1 + reconnects).
        self.connections = 0
        self.replica: str | None = None
        self._outbox: dict[str, _Outgoing] = {}
        self._listeners: set[asyncio.Queue[Event]] = set()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._url_index = 0
        self._heartbeat = 15.0
        self.error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> RealtimeClient:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="agentfleet realtime")

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for out in self._outbox.values():
            if not out.future.done():
                out.future.cancel()

    async def wait_connected(self, within: float = 10.0) -> None:
        await asyncio.wait_for(self.connected.wait(), within)

    # -- what users call ------------------------------------------------------------------

    async def subscribe(self, session_id: str, *, after: int = 0) -> SessionState:
        state = self.sessions.get(session_id)
        if state is None:
            state = self.sessions[session_id] = SessionState(session_id, last_event_id=after)
        await self._send(
            {"type": "subscribe", "session_id": session_id, "after": state.last_event_id}
        )
        return state

    async def send(
        self, session_id: str, content: str, *, idempotency_key: str | None = None
    ) -> Ack:
        """Send a message; returns once the server acknowledged it (durably queued).
        While disconnected it waits in the outbox and is sent on reconnect."""
        key = idempotency_key or uuid.uuid4().hex
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        out = _Outgoing(session_id, content, key, future)
        self._outbox[key] = out
        await self._transmit(out)
        try:
            return await asyncio.shield(future)
        finally:
            if future.done():
                self._outbox.pop(key, None)

    def pending(self) -> int:
        """Messages sent but not acknowledged yet."""
        return sum(not o.future.done() for o in self._outbox.values())

    async def events(self, session_id: str | None = None) -> AsyncIterator[Event]:
        """Events as they arrive (each once, in order per session), forever."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            while True:
                event = await queue.get()
                if session_id is None or event.session_id == session_id:
                    yield event
        finally:
            self._listeners.discard(queue)

    # -- the connection loop ----------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> bool:
        ws = self._ws
        if ws is None or not self.connected.is_set():
            return False
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    async def _transmit(self, out: _Outgoing) -> None:
        out.sent_at = asyncio.get_running_loop().time()
        await self._send(
            {
                "type": "message",
                "session_id": out.session_id,
                "content": out.content,
                "idempotency_key": out.key,
            }
        )

    async def _run(self) -> None:
        attempt = 0
        refresh = False
        while not self._closing:
            hint: float | None = None
            url = self.urls[self._url_index % len(self.urls)]
            try:
                headers = await self._credentials.headers(refresh=refresh)
                refresh = False
                async with connect(
                    url,
                    additional_headers=headers,
                    open_timeout=self.open_timeout,
                    ping_interval=None,
                    close_timeout=2,
                ) as ws:
                    await self._session(ws)
                    attempt = 0
            except asyncio.CancelledError:
                raise
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code in TERMINAL_CLOSE_CODES:
                    self._fail(RealtimeClosedError(code, exc.rcvd.reason if exc.rcvd else ""))
                    return
                if code in REAUTH_CLOSE_CODES:
                    if not self._credentials.can_refresh and code == CloseCode.UNAUTHORIZED:
                        self._fail(RealtimeClosedError(code, "the token was refused"))
                        return
                    refresh = True
                if code in (CloseCode.SERVICE_RESTART, CloseCode.TRY_AGAIN_LATER):
                    self._url_index += 1  # that replica is going away or full: try another
                # saturated (1013: unless another replica can be tried) or over the
                # tenant's connection quota (1008): wait as the close reason says
                if code == CloseCode.POLICY_VIOLATION or (
                    code == CloseCode.TRY_AGAIN_LATER and len(self.urls) == 1
                ):
                    hint = retry_after_hint(exc.rcvd.reason if exc.rcvd else None)
            except Exception as exc:  # refused, reset, timed out, bad handshake...
                if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                    refresh = self._credentials.can_refresh
                log.debug("connection failed: %r", exc)
                self._url_index += 1
            finally:
                self._ws = None
                self.connected.clear()
            delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
            if hint is not None:
                delay = max(delay, hint)
            attempt += 1
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), self.open_timeout))
        if welcome.get("type") != "welcome":
            raise ConnectionClosed(None, None)
        self._heartbeat = float(welcome.get("heartbeat_interval", 15.0))
        self.replica = welcome.get("replica")
        self._ws = ws
        self.connections += 1
        self.connected.set()
        for state in list(self.sessions.values()):  # resume: what we missed, then live
            await ws.send(
                json.dumps(
                    {
                        "type": "subscribe",
                        "session_id": state.session_id,
                        "after": state.last_event_id,
                    }
                )
            )
        for out in list(self._outbox.values()):  # resend everything not acknowledged
            if not out.future.done():
                await self._transmit(out)
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), self._heartbeat * 2 + 1)
            except TimeoutError:  # silence: the connection (or the server) is dead
                raise ConnectionClosed(None, None) from None
            self._resend_overdue()
            await self._handle(ws, json.loads(raw))

    def _resend_overdue(self) -> None:
        now = asyncio.get_running_loop().time()
        for out in list(self._outbox.values()):
            if not out.future.done() and now - out.sent_at > self.ack_timeout:
                asyncio.get_running_loop().create_task(self._transmit(out))

    async def _handle(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ping":
            await ws.send(json.dumps({"type": "pong", "ts": frame.get("ts")}))
        elif kind == "event":
            event = Event.model_validate(frame["event"])
            state = self.sessions.get(event.session_id)
            if state is None:
                state = self.sessions[event.session_id] = SessionState(event.session_id)
            if state.apply(event):
                for queue in list(self._listeners):
                    queue.put_nowait(event)
        elif kind == "ack":
            out = self._outbox.get(frame["idempotency_key"])
            if out is not None and not out.future.done():
                out.future.set_result(Ack.model_validate(frame))
        elif kind == "gap":
            state = self.sessions.get(frame["session_id"])
            if state is not None:
                state.gaps.append((int(frame["after"]), int(frame["next"])))
        elif kind == "error":
            key = frame.get("idempotency_key")
            out = self._outbox.get(key) if key else None
            if out is not None and not out.future.done():
                if frame.get("code") == "shutting-down":
                    return  # resent after the reconnect
                out.future.set_exception(
                    MessageRejectedError(str(frame.get("code")), str(frame.get("detail")))
                )

    def _fail(self, error: BaseException) -> None:
        self.error = error
        for out in self._outbox.values():
            if not out.future.done():
                out.future.set_exception(error)
