"""Circuit breakers: pybreaker's state machine, driven correctly from asyncio, with an
injectable clock, a bound on half-open trial calls, manual control, and state shared
across replicas through the state backend when one is configured.

How pybreaker is used (it has no asyncio support: ``call_async`` is Tornado-only and
``cb.call(async_fn)`` returns an un-awaited coroutine whose failure is never counted):

* a call is guarded by ``with cb.calling(): await ...`` — pybreaker's generator-based
  context manager records the outcome when the block exits, and holds no lock across the
  ``await``. :class:`BreakerGuard` enters and exits it explicitly, so a stream can keep
  the guard open while it is consumed;
* the storage is our own :class:`ClockStorage`, in process memory: every read pybreaker
  makes is a plain attribute read (no blocking Redis call inside the event loop, unlike
  ``CircuitRedisStorage``), and ``opened_at`` follows the injectable :class:`Clock` with
  sub-second precision (``CircuitRedisStorage`` keeps whole seconds);
* pybreaker counts every exception it sees, ``CancelledError`` included, and treats an
  excluded exception as a success. Errors are therefore classified
  (:func:`~.classify.breaker_outcome`): a *neutral* outcome (cancelled, throttled,
  refused by the pipeline) leaves the counters alone;
* pybreaker lets every call through while half-open; ``half_open_max_calls`` bounds the
  trial calls in flight (the others are refused as if open).

Sharing across replicas (:class:`~agentfleet_runtime.state.base.BreakerStateStore`):
each replica counts its own consecutive failures; transitions to *open* and *closed* and
manual overrides are written to the shared store (compare-and-set, in the background),
and a breaker in use re-reads the shared state at most every ``sync_interval`` seconds,
in the background, never in the call's path. So one replica tripping stops every replica
from calling within about a second, and one successful probe closes it everywhere. When
the store is unreachable the breaker keeps working on local state and writes it back once
the store answers again (resync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal

import pybreaker

from agentfleet_crds.v1alpha1.resiliencepolicy import CircuitBreakerOptions
from agentfleet_runtime.errors import CircuitOpenError
from agentfleet_runtime.resilience.classify import breaker_outcome
from agentfleet_runtime.resilience.clock import SYSTEM_CLOCK, Clock
from agentfleet_runtime.resilience.events import BreakerStateChanged, EventBus
from agentfleet_runtime.state.base import BreakerState, BreakerStateStore

__all__ = ["BreakerGuard", "CircuitBreaker", "ClockStorage", "Forced"]

log = logging.getLogger(__name__)

Forced = Literal["open", "closed"]


class ClockStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker storage in process memory whose ``opened_at`` follows a :class:`Clock`.

    pybreaker compares ``datetime.now(UTC)`` with ``opened_at + reset_timeout``; this
    storage answers ``opened_at`` as "now minus the time elapsed on our clock since the
    breaker opened", so a :class:`~.clock.ManualClock` drives recovery in tests. While
    ``neutral`` is set (by the breaker's exclusion predicate, for the outcome being
    recorded), the counters are left alone.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock = clock
        self.opened_mono: float | None = None
        self.neutral = False

    @property
    def opened_at(self) -> datetime | None:
        if self.opened_mono is None:
            return None
        return datetime.now(UTC) - timedelta(seconds=self._clock.now() - self.opened_mono)

    @opened_at.setter
    def opened_at(self, _value: datetime) -> None:
        self.opened_mono = self._clock.now()

    def reset_counter(self) -> None:
        if not self.neutral:
            super().reset_counter()

    def increment_success_counter(self) -> None:
        if not self.neutral:
            super().increment_success_counter()


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: CircuitBreaker) -> None:
        self._owner = owner

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else "closed"
        self._owner._transitioned(old, new_state.name)


class BreakerGuard:
    """One call through a breaker: ``with breaker.guard(): await ...`` (or entered and
    exited explicitly around a stream). Raises :class:`CircuitOpenError` on entry when
    the breaker refuses."""

    __slots__ = ("_breaker", "_cm", "_trial")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._cm: contextlib.AbstractContextManager[Any] | None = None
        self._trial = False

    def __enter__(self) -> BreakerGuard:
        breaker = self._breaker
        breaker.maybe_sync()
        forced = breaker.forced
        if forced == "closed":
            return self
        if forced == "open":
            raise breaker.open_error("forced open by an operator")
        cb = breaker._cb
        state = cb.current_state
        if state != pybreaker.STATE_CLOSED and breaker._trials >= breaker.half_open_max_calls:
            # Half-open (or about to be) with every trial slot taken: refuse like open.
            raise breaker.open_error("half-open, trial calls in progress")
        cm = cb.calling()
        try:
            cm.__enter__()
        except pybreaker.CircuitBreakerError:
            raise breaker.open_error("open") from None
        self._cm = cm
        if cb.current_state == pybreaker.STATE_HALF_OPEN:
            self._trial = True
            breaker._trials += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        cm, self._cm = self._cm, None
        if cm is None:
            return False
        breaker = self._breaker
        try:
            if exc is None:
                cm.__exit__(None, None, None)
                return False
            return bool(cm.__exit__(exc_type, exc, tb))
        finally:
            breaker._storage.neutral = False
            if self._trial:
                self._trial = False
                breaker._trials -= 1


class CircuitBreaker:
    """A named circuit breaker (closed → open → half-open → closed), see the module doc."""

    def __init__(
        self,
        name: str,
        options: CircuitBreakerOptions | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
        shared: BreakerStateStore | None = None,
        sync_interval: float = 1.0,
    ) -> None:
        options = options or CircuitBreakerOptions()
        self.name = name
        self._clock = clock
        self._bus = bus
        self._storage = ClockStorage(clock)
        self._cb = pybreaker.CircuitBreaker(
            fail_max=options.failure_threshold,
            reset_timeout=options.recovery_timeout_seconds,
            exclude=[self._excluded],
            listeners=[_Listener(self)],
            state_storage=self._storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        self.half_open_max_calls = options.half_open_max_calls
        self.forced: Forced | None = None
        self._trials = 0
        self._source = "calls"
        # -- sharing
        self._shared = shared
        self._sync_interval = sync_interval
        self._next_sync = 0.0
        self._seen_version = -1
        self._dirty = False
        self._store_down = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._syncing = False

    # -- configuration -------------------------------------------------------------------

    def configure(self, options: CircuitBreakerOptions) -> None:
        """Apply new options (a reloaded policy) without losing the state."""
        self._cb.fail_max = options.failure_threshold
        self._cb.reset_timeout = options.recovery_timeout_seconds
        self.half_open_max_calls = options.half_open_max_calls

    @property
    def failure_threshold(self) -> int:
        return int(self._cb.fail_max)

    @property
    def recovery_timeout(self) -> float:
        return float(self._cb.reset_timeout)

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``closed``, ``open``, ``half-open``, ``forced-open`` or ``forced-closed``."""
        if self.forced is not None:
            return f"forced-{self.forced}"
        return str(self._cb.current_state)

    @property
    def failures(self) -> int:
        return int(self._cb.fail_counter)

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when it would now)."""
        opened = self._storage.opened_mono
        if self._cb.current_state != pybreaker.STATE_OPEN or opened is None:
            return 0.0
        return max(0.0, opened + self._cb.reset_timeout - self._clock.now())

    @property
    def refusing(self) -> bool:
        """Whether a call made now would be refused (forced open, or open and not yet due
        for a trial call)."""
        if self.forced is not None:
            return self.forced == "open"
        return self._cb.current_state == pybreaker.STATE_OPEN and self.retry_after() > 0

    def open_error(self, why: str) -> CircuitOpenError:
        wait = self.retry_after() if self.forced is None else None
        return CircuitOpenError(
            f"circuit breaker {self.name} is {why}: calls are not made"
            + (f" (next trial in {wait:.1f}s)" if wait else ""),
            dependency=self.name,
            retry_after=wait or None,
        )

    def guard(self) -> BreakerGuard:
        return BreakerGuard(self)

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "failures": self.failures,
            "failure_threshold": self.failure_threshold,
            "recovery_timeout_seconds": self.recovery_timeout,
            "retry_after_seconds": round(self.retry_after(), 3),
            "forced": self.forced,
            "shared": self._shared is not None,
        }

    def _excluded(self, exc: BaseException) -> bool:
        outcome = breaker_outcome(exc)
        if outcome == "neutral":
            self._storage.neutral = True
        return outcome != "failure"

    def _transitioned(self, old: str, new: str) -> None:
        if old == new:
            return
        if self._bus is not None:
            self._bus.publish(BreakerStateChanged(self.name, old, new, self._source))
        # A transition adopted from the store is not written back; a manual one is
        # written by the manual method itself, in order (a second, background write of
        # the same change could land after another replica's newer decision and undo it).
        if self._source == "calls" and new in (pybreaker.STATE_OPEN, pybreaker.STATE_CLOSED):
            self._schedule_push()

    def _announce(self, old: str, source: str) -> None:
        if self._bus is not None and old != self.state:
            self._bus.publish(BreakerStateChanged(self.name, old, self.state, source))

    # -- manual control -------------------------------------------------------------------

    async def force_open(self) -> None:
        """Refuse every call until :meth:`reset` or :meth:`force_closed`."""
        old = self.state
        self.forced = "open"
        self._announce(old, "manual")
        await self._push()

    async def force_closed(self) -> None:
        """Let every call through, uncounted, until :meth:`reset` or :meth:`force_open`."""
        old = self.state
        self.forced = "closed"
        self._announce(old, "manual")
        await self._push()

    async def reset(self) -> None:
        """Back to closed with no failures counted, overrides cleared."""
        old = self.state
        self.forced = None
        self._source = "manual"
        try:
            self._cb.close()
        finally:
            self._source = "calls"
        self._storage.opened_mono = None
        if old.startswith("forced"):
            self._announce(old, "manual")
        await self._push()

    # -- sharing --------------------------------------------------------------------------

    def maybe_sync(self) -> None:
        """Start a background read of the shared state when one is due (cheap otherwise)."""
        if self._shared is None or self._syncing:
            return
        now = self._clock.now()
        if now < self._next_sync:
            return
        self._next_sync = now + self._sync_interval
        self._syncing = True
        self._spawn(self._pull())

    async def sync(self) -> None:
        """Read (and, after an outage of the store, write back) the shared state now."""
        if self._shared is not None:
            await self._pull()

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no running loop (called from sync code at shutdown)
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_push(self) -> None:
        if self._shared is not None:
            self._dirty = True
            self._spawn(self._push())

    def _local(self) -> BreakerState:
        opened = self._storage.opened_mono
        opened_wall = None if opened is None else self._clock.wall() - (self._clock.now() - opened)
        state = str(self._cb.current_state)
        if state == pybreaker.STATE_HALF_OPEN:
            state = pybreaker.STATE_OPEN
        return BreakerState(
            state=state,
            failures=self.failures,
            opened_at=opened_wall if state == pybreaker.STATE_OPEN else None,
            extra={"forced": self.forced},
        )

    async def _push(self) -> None:
        if self._shared is None:
            return
        local = self._local()

        def change(state: BreakerState) -> None:
            state.state = local.state
            state.failures = local.failures
            state.opened_at = local.opened_at
            state.extra = dict(local.extra)

        try:
            stored = await self._shared.update(self.name, change)
        except Exception as exc:
            self._dirty = True
            self._store_unreachable(exc)
            return
        self._dirty = False
        self._seen_version = stored.version
        self._store_reachable()

    async def _pull(self) -> None:
        assert self._shared is not None
        try:
            if self._dirty:  # local changes the store missed while it was down: resync
                await self._push()
                return
            remote = await self._shared.get(self.name)
        except Exception as exc:
            self._store_unreachable(exc)
            return
        finally:
            self._syncing = False
        self._store_reachable()
        if remote.version == self._seen_version:
            return
        self._seen_version = remote.version
        self._adopt(remote)

    def _adopt(self, remote: BreakerState) -> None:
        """Take the shared state over (what another replica decided)."""
        old, old_forced = self.state, self.forced
        forced = remote.extra.get("forced")
        self.forced = forced if forced in ("open", "closed") else None
        self._source = "shared"
        try:
            local = self._cb.current_state
            if remote.state == pybreaker.STATE_OPEN and local == pybreaker.STATE_CLOSED:
                self._cb.open()
                if remote.opened_at is not None:
                    elapsed = max(0.0, self._clock.wall() - remote.opened_at)
                    self._storage.opened_mono = self._clock.now() - elapsed
            elif remote.state == pybreaker.STATE_CLOSED and local != pybreaker.STATE_CLOSED:
                self._cb.close()
                self._storage.opened_mono = None
        finally:
            self._source = "calls"
        if old_forced != self.forced:
            self._announce(old, "shared")

    def _store_unreachable(self, exc: BaseException) -> None:
        if not self._store_down:
            self._store_down = True
            log.warning(
                "circuit breaker %s: shared state unreachable, using local state (%s)",
                self.name,
                exc,
                extra={"breaker": self.name},
            )

    def _store_reachable(self) -> None:
        if self._store_down:
            self._store_down = False
            log.info(
                "circuit breaker %s: shared state reachable again (resynced)",
                self.name,
                extra={"breaker": self.name},
            )

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
