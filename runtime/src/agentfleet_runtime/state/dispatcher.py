"""Which replica runs which session's turns: per-session leases over the durable inboxes
of :class:`~agentfleet_runtime.state.base.TurnQueue`.

* :meth:`TurnDispatcher.submit` queues a message durably (once per idempotency key) and,
  when nobody holds the session's lease, takes it and starts a worker here.
* A worker runs the session's queued turns one at a time, in order, renewing its lease;
  an empty inbox releases the lease in the same atomic step.
* Every replica sweeps for sessions with queued or in-flight work and no lease holder
  (a replica died, or handed its work over while draining) and takes them: an in-flight
  turn is then *recovered* — the claim comes back with ``attempt`` + 1 and the service
  resumes it (from its last checkpoint) or, past ``max_recoveries``, fails it with reason
  ``recovery-exhausted``. A turn is never silently lost.
* :meth:`drain` (graceful shutdown): stop taking work, let running turns finish within
  the grace period, cancel the rest and release their leases so another replica resumes
  them at once (a ``sweep`` broadcast wakes the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from agentfleet_runtime.errors import AgentfleetError, DependencyError
from agentfleet_runtime.state.base import Acceptance, Claim, LeaseLostError, TurnQueue

log = logging.getLogger(__name__)

RunClaim = Callable[[Claim, str], Coroutine[Any, Any, object]]
Broadcast = Callable[[dict[str, object]], Awaitable[None]]


class ShuttingDownError(AgentfleetError):
    status = 503
    slug = "shutting-down"
    title = "This replica is shutting down"
    retryable = True


class TurnDispatcher:
    def __init__(
        self,
        queue: TurnQueue,
        run: RunClaim,
        *,
        owner: str,
        lease_seconds: float = 10.0,
        sweep_interval: float = 2.0,
        max_recoveries: int = 2,
        exhausted: RunClaim | None = None,
        broadcast: Broadcast | None = None,
    ) -> None:
        self.queue = queue
        self._run = run
        self._exhausted = exhausted
        self._broadcast = broadcast
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.sweep_interval = sweep_interval
        self.max_recoveries = max_recoveries
        self.accepting = True
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._turns: dict[str, asyncio.Task[object]] = {}
        self._handed_over: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="turn sweeper")

    def on_control(self, message: dict[str, object]) -> None:
        """A ``sweep`` (another replica handed work over) or ``reconnected`` message."""
        if message.get("type") in ("sweep", "reconnected"):
            self._wake.set()

    def running_turns(self) -> int:
        return len(self._turns)

    async def drain(self, grace_seconds: float) -> None:
        """Stop taking work; running turns get ``grace_seconds`` to finish, the rest are
        handed over (lease released, claim kept in flight for another replica)."""
        self.accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        turns = set(self._turns.values())
        if turns:
            _, pending = await asyncio.wait(turns, timeout=grace_seconds)
            for session_id, task in list(self._turns.items()):
                if task in pending:
                    self._handed_over.add(session_id)
                    task.cancel()
        workers = list(self._workers.values())
        if workers:
            await asyncio.wait(workers, timeout=5)
        if self._handed_over and self._broadcast is not None:
            with contextlib.suppress(Exception):
                await self._broadcast({"type": "sweep", "from": self.owner})

    async def aclose(self) -> None:
        self.accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._workers.values()):
            task.cancel()
        for task in list(self._workers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- accepting work -------------------------------------------------------------------

    async def submit(
        self,
        session_id: str,
        content: str,
        *,
        idempotency_key: str | None = None,
        stream_tokens: bool = True,
        message_id: str | None = None,
    ) -> Acceptance:
        """``message_id``: chosen by the caller (its turn id is ``turn_<the same hex>``)."""
        if not self.accepting:
            raise ShuttingDownError("this replica is draining: send the message to another")
        message_id = message_id or f"msg_{uuid.uuid4().hex}"
        acceptance = await self.queue.accept(
            session_id,
            content,
            idempotency_key=idempotency_key or message_id,
            message_id=message_id,
            stream_tokens=stream_tokens,
        )
        self.kick(session_id)
        return acceptance

    def kick(self, session_id: str) -> None:
        """Run the session's queued work here if nobody else does."""
        if not self.accepting or session_id in self._workers:
            return
        task = asyncio.create_task(self._claim(session_id), name=f"session worker {session_id}")
        self._workers[session_id] = task
        task.add_done_callback(lambda _: self._workers.pop(session_id, None))

    # -- running work ---------------------------------------------------------------------

    async def _claim(self, session_id: str) -> None:
        try:
            if await self.queue.try_lease(session_id, self.owner, self.lease_seconds):
                await self._work(session_id)
        except asyncio.CancelledError:
            raise
        except DependencyError as exc:  # e.g. Redis unavailable: the sweep retries later
            log.warning("session worker stopped: %s", exc.detail, extra={"session": session_id})
        except Exception:
            log.exception("session worker failed", extra={"session": session_id})

    async def _work(self, session_id: str) -> None:
        while True:
            if not self.accepting:
                await self.queue.release(session_id, self.owner)
                return
            claim_id = uuid.uuid4().hex
            try:
                claim = await self.queue.next(session_id, self.owner, self.lease_seconds, claim_id)
            except LeaseLostError:
                return
            if claim is None:
                return
            if claim.attempt > self.max_recoveries + 1 and self._exhausted is not None:
                await self._exhausted(claim, self.owner)
                await self.queue.finish(session_id, self.owner, claim_id)
                continue
            turn: asyncio.Task[object] = asyncio.create_task(
                self._run(claim, self.owner), name=f"turn {claim.message.turn_id}"
            )
            self._turns[session_id] = turn
            lost = False
            try:
                await self._hold_lease(session_id, turn)
            finally:
                self._turns.pop(session_id, None)
            if turn.cancelled() or isinstance(turn.exception(), LeaseLostError):
                lost = True
            if session_id in self._handed_over:
                self._handed_over.discard(session_id)
                await self.queue.release(session_id, self.owner)
                return
            if lost:
                return
            await self.queue.finish(session_id, self.owner, claim_id)

    async def _hold_lease(self, session_id: str, turn: asyncio.Task[object]) -> None:
        """Wait for ``turn`` to end, renewing the session's lease every third of its
        length meanwhile; a lease found lost cancels the turn (another replica owns the
        session now). A timed wait, not a renewer task per turn: most turns end before
        the first renewal, and creating and cancelling a task each time was measurable
        in the turn benchmark."""
        interval = self.lease_seconds / 3
        while True:
            await asyncio.wait([turn], timeout=interval)
            if turn.done():
                return
            try:
                held = await self.queue.renew(session_id, self.owner, self.lease_seconds)
            except Exception:
                continue  # the store is unreachable: keep trying until the lease lapses
            if not held:
                log.warning("lease lost mid-turn", extra={"session": session_id})
                turn.cancel()
                await asyncio.wait([turn])
                return

    async def _sweep_loop(self) -> None:
        while self.accepting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sweep_interval)
            self._wake.clear()
            try:
                for session_id in await self.queue.pending(200):
                    self.kick(session_id)
            except Exception:
                log.warning("sweep failed", exc_info=True)
