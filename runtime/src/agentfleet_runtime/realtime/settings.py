"""``AGENTFLEET_REALTIME__*``: WebSocket and SSE behaviour."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RealtimeSettings(BaseModel):
    #: The server pings every connection this often (a ``ping`` frame) ...
    heartbeat_interval_seconds: float = Field(default=15.0, gt=0)
    #: ... and closes one it has heard nothing from for interval + this (4408).
    heartbeat_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Event frames queued per connection; a slow reader makes its subscriptions read
    #: from the event log instead of buffering more (memory per connection is bounded).
    send_queue_frames: int = Field(default=256, ge=8)
    #: A connection whose single frame cannot be written for this long is closed (4429).
    send_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Without an ``Authorization`` header, the ``auth`` frame must come within this.
    auth_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Sessions one connection may subscribe to.
    max_subscriptions: int = Field(default=64, ge=1)
    #: SSE streams send a comment this often so proxies keep them open.
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    #: On SIGTERM, readiness turns false this long before connections are closed (let the
    #: load balancer stop routing here first; 5 s is typical in Kubernetes).
    drain_delay_seconds: float = Field(default=0.0, ge=0)
    #: Admission control (docs/state-and-realtime.md#admission-control): the replica is
    #: *saturated* at this many open WebSocket connections (about 46 KiB each when idle) ...
    max_connections: int = Field(default=10_000, ge=1)
    #: ... or, when set, with this many turns waiting for an execution slot (the fair
    #: scheduler's queue, AGENTFLEET_SCHEDULING__MAX_CONCURRENT_TURNS).
    saturation_waiting_turns: int | None = Field(default=None, ge=1)
    #: While saturated: new WebSockets are closed 1013, new SSE streams get 503, and
    #: readiness is false — until every signal is below this fraction of its limit.
    resume_ratio: float = Field(default=0.9, gt=0, le=1)
    #: The retry hint sent with a refusal (close reason ``retry-after=N``, ``Retry-After``).
    retry_after_seconds: int = Field(default=5, ge=1)
