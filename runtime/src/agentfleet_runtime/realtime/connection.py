"""One WebSocket connection: authentication, subscriptions, messages, heartbeat and a
bounded send queue.

Frames leave through one writer task. Control frames (acks, errors, pongs, pings) go
first; event frames wait in a bounded queue. A subscription that cannot enqueue (the
client reads slowly) simply waits: its follower stops buffering and later reads what it
missed from the session's event log — so a slow client costs at most
``send_queue_frames`` frames of memory and still receives every event, in order. A client
that does not drain even one frame within ``send_timeout_seconds`` is closed (4429).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from agentfleet.protocol import (
    CLIENT_FRAME,
    AckFrame,
    AuthFrame,
    CloseCode,
    ErrorFrame,
    MessageFrame,
    PingFrame,
    PongFrame,
    SubscribedFrame,
    SubscribeFrame,
    UnsubscribedFrame,
    UnsubscribeFrame,
    WelcomeFrame,
)
from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.auth.base import (
    DEFAULT_TENANT,
    AuthenticationError,
    Authenticator,
    Principal,
    Scope,
    TokenExpiredError,
)
from agentfleet_runtime.auth.factory import bearer
from agentfleet_runtime.errors import AgentfleetError
from agentfleet_runtime.realtime.settings import RealtimeSettings

if TYPE_CHECKING:
    from agentfleet_runtime.agent.service import AgentService
    from agentfleet_runtime.realtime.admission import Admission
    from agentfleet_runtime.realtime.hub import ConnectionHub

log = logging.getLogger(__name__)

#: Close code for an unknown session on the per-session endpoint.
CLOSE_NOT_FOUND = 4404


class _FrameCache:
    """Event frames serialized once per process, not once per subscriber (fan-out)."""

    def __init__(self, size: int = 2048) -> None:
        self._frames: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._size = size

    def frame(self, event: TurnEvent) -> str:
        key = (event["session_id"], event["id"])
        text = self._frames.get(key)
        if text is None:
            text = json.dumps({"type": "event", "event": event}, separators=(",", ":"))
            self._frames[key] = text
            if len(self._frames) > self._size:
                self._frames.popitem(last=False)
        return text


FRAMES = _FrameCache()


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        hub: ConnectionHub,
        service: AgentService,
        authenticator: Authenticator,
        settings: RealtimeSettings,
        replica: str,
        admission: Admission | None = None,
        default_session: str | None = None,
        greet: bool = True,
    ) -> None:
        self.ws = websocket
        self.hub = hub
        self.admission = admission
        self.service = service
        self.authenticator = authenticator
        self.settings = settings
        self.replica = replica
        self.default_session = default_session
        self.greet = greet
        self.id = f"conn_{uuid.uuid4().hex[:16]}"
        self.principal: Principal | None = None
        self.last_seen = time.monotonic()
        self.closing = False
        self._control: deque[str] = deque()
        self._events: asyncio.Queue[str] = asyncio.Queue(settings.send_queue_frames)
        self._wake = asyncio.Event()
        self._subscriptions: dict[str, asyncio.Task[None]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[Any] | None = None

    @property
    def tenant(self) -> str:
        return self.principal.tenant if self.principal is not None else DEFAULT_TENANT

    # -- sending --------------------------------------------------------------------------

    def send_control(self, frame: dict[str, Any]) -> None:
        if self.closing:
            return
        if len(self._control) > 1024:  # the client floods us and does not read
            self.close_soon(CloseCode.SLOW_CONSUMER, "too many unread replies")
            return
        self._control.append(json.dumps(frame, separators=(",", ":")))
        self._wake.set()

    async def _send_event(self, frame: str) -> None:
        await self._events.put(frame)  # waits while the queue is full (backpressure)
        self._wake.set()

    async def _write_loop(self) -> None:
        timeout = self.settings.send_timeout_seconds
        while True:
            if not self._control and self._events.empty():
                self._wake.clear()
                await self._wake.wait()
            if self._control:
                frame = self._control.popleft()
            elif not self._events.empty():
                frame = self._events.get_nowait()
            else:
                continue
            try:
                await asyncio.wait_for(self.ws.send_text(frame), timeout)
            except TimeoutError:
                self.close_soon(CloseCode.SLOW_CONSUMER, "the client does not read its frames")
                return
            except Exception:
                return  # disconnected; the reader notices too

    # -- closing --------------------------------------------------------------------------

    def close_soon(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        task = asyncio.create_task(self._close(code, reason))
        self.hub.track(task)

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            if self.ws.client_state is WebSocketState.CONNECTED:
                await asyncio.wait_for(self.ws.close(code=code, reason=reason[:120]), 2)
        if self._reader is not None:
            self._reader.cancel()

    # -- the connection's life ------------------------------------------------------------

    async def run(self, token: str | None = None, after: int = 0) -> None:
        await self.ws.accept()
        self._reader = asyncio.current_task()
        try:
            if not await self._authenticate(token or bearer(self.ws.headers.get("authorization"))):
                return
            admission = self.admission
            limit = None if admission is None else await admission.tenant_limit(self.tenant)
            if self.default_session is not None:
                try:
                    assert self.principal is not None
                    self.principal.require(Scope.READ)
                    await self.service.get_session(
                        self.default_session, tenant=self.principal.tenant
                    )
                except AgentfleetError as exc:
                    await self.ws.close(code=CLOSE_NOT_FOUND, reason=exc.detail[:120])
                    return
            if admission is not None:  # checked and added with no await between
                refusal = admission.check(self.tenant, limit)
                if refusal is not None:
                    await self.ws.close(refusal.code, refusal.close_reason)
                    return
            self.hub.add(self)
            self._writer = asyncio.create_task(self._write_loop())
            if self.greet:
                assert self.principal is not None
                self.send_control(
                    WelcomeFrame(
                        connection_id=self.id,
                        replica=self.replica,
                        subject=self.principal.subject,
                        heartbeat_interval=self.settings.heartbeat_interval_seconds,
                    ).model_dump()
                )
            if self.default_session is not None:
                await self._subscribe(self.default_session, after, announce=self.greet)
            await self._receive_loop()
        except (WebSocketDisconnect, asyncio.CancelledError):
            pass
        finally:
            await self._cleanup()

    async def _authenticate(self, token: str | None) -> bool:
        if token is None and self.authenticator.required:
            try:
                raw = await asyncio.wait_for(
                    self.ws.receive_text(), self.settings.auth_timeout_seconds
                )
            except TimeoutError:
                await self.ws.close(CloseCode.TIMEOUT, "no auth frame in time")
                return False
            try:
                frame = CLIENT_FRAME.validate_json(raw)
            except ValidationError:
                frame = None
            if not isinstance(frame, AuthFrame):
                await self.ws.close(CloseCode.UNAUTHORIZED, "the first frame must be auth")
                return False
            token = frame.token
        try:
            self.principal = await self.authenticator.authenticate(token)
        except TokenExpiredError as exc:
            await self.ws.close(CloseCode.TOKEN_EXPIRED, exc.detail[:120])
            return False
        except AuthenticationError as exc:
            await self.ws.close(CloseCode.UNAUTHORIZED, exc.detail[:120])
            return False
        left = self.principal.seconds_left()
        if left is not None:
            self._expiry = asyncio.get_running_loop().call_later(
                max(0.0, left), self.close_soon, CloseCode.TOKEN_EXPIRED, "the token expired"
            )
        return True

    async def _receive_loop(self) -> None:
        while True:
            raw = await self.ws.receive_text()
            self.last_seen = time.monotonic()
            try:
                frame = CLIENT_FRAME.validate_json(raw)
            except ValidationError as exc:
                if _is_json_object(raw) and _known_type(raw):
                    self.send_control(
                        ErrorFrame(
                            code="invalid-request", detail=str(exc.errors()[0]["msg"])
                        ).model_dump(exclude_none=True)
                    )
                    continue
                detail = (
                    "frames must be JSON objects"
                    if not _is_json_object(raw)
                    else f"unknown frame type {_frame_type(raw)!r}"
                )
                fatal = not _is_json_object(raw)
                self.send_control(
                    ErrorFrame(code="bad-frame", detail=detail, fatal=fatal).model_dump(
                        exclude_none=True
                    )
                )
                if fatal:
                    await self._flush()
                    await self.ws.close(CloseCode.BAD_FRAME, detail)
                    return
                continue
            await self._handle(frame)

    async def _handle(self, frame: Any) -> None:
        if isinstance(frame, PingFrame):
            self.send_control(PongFrame(ts=frame.ts).model_dump(exclude_none=True))
        elif isinstance(frame, PongFrame):
            pass
        elif isinstance(frame, SubscribeFrame):
            await self._subscribe(frame.session_id, frame.after, announce=True)
        elif isinstance(frame, UnsubscribeFrame):
            task = self._subscriptions.pop(frame.session_id, None)
            if task is not None:
                task.cancel()
            self.send_control(UnsubscribedFrame(session_id=frame.session_id).model_dump())
        elif isinstance(frame, MessageFrame):
            await self._message(frame)
        elif isinstance(frame, AuthFrame):
            self.send_control(
                ErrorFrame(code="bad-frame", detail="already authenticated").model_dump(
                    exclude_none=True
                )
            )

    async def _subscribe(self, session_id: str, after: int, *, announce: bool) -> None:
        if session_id in self._subscriptions:
            self._subscriptions.pop(session_id).cancel()
        if len(self._subscriptions) >= self.settings.max_subscriptions:
            self.send_control(
                ErrorFrame(
                    code="too-many-subscriptions",
                    detail=f"at most {self.settings.max_subscriptions} sessions per connection",
                    session_id=session_id,
                ).model_dump(exclude_none=True)
            )
            return
        try:
            assert self.principal is not None
            self.principal.require(Scope.READ)  # and only the caller's tenant's sessions:
            await self.service.get_session(session_id, tenant=self.principal.tenant)
            last = await self.service.last_event_id(session_id)
        except AgentfleetError as exc:
            self.send_control(
                ErrorFrame(code=exc.slug, detail=exc.detail, session_id=session_id).model_dump(
                    exclude_none=True
                )
            )
            return
        if announce:
            self.send_control(
                SubscribedFrame(session_id=session_id, after=after, last_event_id=last).model_dump()
            )
        self._subscriptions[session_id] = asyncio.create_task(self._forward(session_id, after))

    async def _forward(self, session_id: str, after: int) -> None:
        cursor = after
        try:
            async for event in self.service.follow_events(session_id, after=after):
                if event["id"] > cursor + 1 and self.greet:  # trimmed history
                    self.send_control(
                        {
                            "type": "gap",
                            "session_id": session_id,
                            "after": cursor,
                            "next": event["id"],
                        }
                    )
                cursor = event["id"]
                await self._send_event(FRAMES.frame(event))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("subscription ended", extra={"session": session_id, "error": str(exc)})
            self.send_control(
                ErrorFrame(
                    code="subscription-failed",
                    detail="the event stream failed; subscribe again to resume",
                    session_id=session_id,
                ).model_dump(exclude_none=True)
            )

    async def _message(self, frame: MessageFrame) -> None:
        session_id = frame.session_id or self.default_session
        if session_id is None:
            self.send_control(
                ErrorFrame(
                    code="invalid-request",
                    detail="session_id is required on this endpoint",
                    idempotency_key=frame.idempotency_key,
                ).model_dump(exclude_none=True)
            )
            return
        try:
            assert self.principal is not None
            self.principal.require(Scope.INVOKE)
            await self.service.get_session(session_id, tenant=self.principal.tenant)
            acceptance = await self.service.submit_turn(
                session_id, frame.content, idempotency_key=frame.idempotency_key
            )
        except AgentfleetError as exc:
            self.send_control(
                ErrorFrame(
                    code=exc.slug,
                    detail=exc.detail,
                    session_id=session_id,
                    idempotency_key=frame.idempotency_key,
                ).model_dump(exclude_none=True)
            )
            return
        message = acceptance.message
        self.send_control(
            AckFrame(
                session_id=session_id,
                message_id=message.message_id,
                turn_id=message.turn_id,
                idempotency_key=message.idempotency_key,
                duplicate=acceptance.duplicate,
            ).model_dump()
        )

    async def _flush(self) -> None:
        for _ in range(50):
            if not self._control:
                return
            await asyncio.sleep(0.01)

    async def _cleanup(self) -> None:
        self.closing = True
        if self._expiry is not None:
            self._expiry.cancel()
        self.hub.discard(self)
        tasks = [*self._subscriptions.values()]
        if self._writer is not None:
            tasks.append(self._writer)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._subscriptions.clear()


def _is_json_object(raw: str) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def _frame_type(raw: str) -> object:
    return json.loads(raw).get("type")


def _known_type(raw: str) -> bool:
    return _frame_type(raw) in {"auth", "subscribe", "unsubscribe", "message", "ping", "pong"}
