"""The dispatcher holds a session's lease for as long as its turn runs, and stops a turn
whose lease was lost (another replica owns the session now)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agentfleet_runtime.state.base import Claim
from agentfleet_runtime.state.dispatcher import TurnDispatcher
from agentfleet_runtime.state.memory import MemoryEventLog, MemoryTurnQueue


class CountingQueue(MemoryTurnQueue):
    """A memory queue that counts renewals and can be told to report the lease lost."""

    def __init__(self) -> None:
        super().__init__(MemoryEventLog())
        self.renewals = 0
        self.lose_lease = False

    async def renew(self, session_id: str, owner: str, ttl: float) -> bool:
        self.renewals += 1
        if self.lose_lease:
            return False
        return await super().renew(session_id, owner, ttl)


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_long_turn_keeps_its_lease_and_a_short_one_never_renews() -> None:
    queue = CountingQueue()
    ran: list[str] = []
    release = asyncio.Event()

    async def run(claim: Claim, owner: str) -> object:
        if claim.message.content == "long":
            await release.wait()
        ran.append(claim.message.content)
        return None

    dispatcher = TurnDispatcher(queue, run, owner="A", lease_seconds=0.3)
    await dispatcher.submit("s", "short")
    await until(lambda: ran == ["short"])
    assert queue.renewals == 0

    await dispatcher.submit("s", "long")
    await until(lambda: dispatcher.running_turns() == 1)
    await asyncio.sleep(0.6)  # twice the lease's length
    assert queue.renewals >= 1
    assert not await queue.try_lease("s", "B", 0.3)  # still A's: renewed
    release.set()
    await until(lambda: ran == ["short", "long"])
    await dispatcher.aclose()


async def test_a_lost_lease_cancels_the_running_turn() -> None:
    queue = CountingQueue()
    cancelled = asyncio.Event()

    async def run(claim: Claim, owner: str) -> object:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    dispatcher = TurnDispatcher(queue, run, owner="A", lease_seconds=0.3)
    await dispatcher.submit("s", "forever")
    await until(lambda: dispatcher.running_turns() == 1)
    queue.lose_lease = True
    await asyncio.wait_for(cancelled.wait(), 5)
    await until(lambda: dispatcher.running_turns() == 0)
    await dispatcher.aclose()
