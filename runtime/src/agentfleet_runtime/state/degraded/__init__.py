"""Degraded mode of the Redis state backend: fail fast behind the ``redis`` circuit
breaker, keep serving what this replica can from memory, write it back in order (resync).

Every call of the wrapped stores goes through the ``redis`` resilience pipeline once one
is attached (:meth:`DegradedMode.attach`, from the resilience wiring): a breaker, retries
on a fresh connection (the driver's own retries are switched off: two layers multiply),
a deadline per attempt. When Redis is *unavailable* — a connection error, a timeout, a
full pool, or the breaker refusing — a write goes to an in-memory **overlay** instead and
a **journal** of the writes is kept, in order; a background task replays the journal to
Redis once it answers again. Healthy calls cost no extra round trip: the wrappers only
remember, in small LRU caches, what they just read or wrote (a session's record, its last
event id, its latest checkpoint), so that the replica knows enough to go on when Redis
goes away.

A session whose writes are in the overlay is *local*: all its writes stay in the overlay
(and the journal) until the journal has none of them left and the local turn queue has no
work for it, so its writes reach Redis in the order they were made. What works while Redis
is unavailable:

* sessions this replica knows (record, last event id and latest checkpoint seen here, or
  created here while degraded) take new messages and run their turns on a local queue and
  lease; events continue from the last known id; checkpoints, records and events go to
  the overlay and, once Redis is back, to Redis (``agentfleet_state_resync_writes_total``);
* reads of what the overlay or the caches hold;
* everything else (an unknown session, listing sessions, deleting a local session, an
  agent or API key write) is refused with a retryable 503 ``state-unavailable`` problem
  carrying ``Retry-After``.

Trade-offs, documented in docs/resilience.md: a message accepted while degraded lives in
this process until the resync (a crash loses it); leases are local, so two replicas cut off
from Redis can both run turns of one session — their events are then *renumbered* at the
resync after the ones Redis already has (ids stay contiguous, ``outcome="renumbered"``);
record updates are last-writer-wins.

Modules: :mod:`.mode` (what the stores share: the pipeline, the caches, the local
sessions, the journal and its resync), :mod:`.sessions`, :mod:`.events`, :mod:`.turns`,
:mod:`.checkpoints` (the stores that keep a local session in memory),
:mod:`.rate_limits` (per-replica buckets) and :mod:`.guarded` (stores that fail fast, or
fall back to the last records read).
"""

from agentfleet_runtime.state.degraded.checkpoints import FallbackCheckpointSaver
from agentfleet_runtime.state.degraded.events import FallbackEventLog
from agentfleet_runtime.state.degraded.guarded import CachedStore, GuardedStore
from agentfleet_runtime.state.degraded.mode import DegradedMode, StateUnavailableError, unavailable
from agentfleet_runtime.state.degraded.rate_limits import FallbackRateLimitStore
from agentfleet_runtime.state.degraded.sessions import FallbackSessionStore
from agentfleet_runtime.state.degraded.turns import FallbackTurnQueue

__all__ = [
    "CachedStore",
    "DegradedMode",
    "FallbackCheckpointSaver",
    "FallbackEventLog",
    "FallbackRateLimitStore",
    "FallbackSessionStore",
    "FallbackTurnQueue",
    "GuardedStore",
    "StateUnavailableError",
    "unavailable",
]
