"""Waiting for an eventually-consistent condition in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually[T](
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float = 5.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call ``probe`` until it returns something truthy (for at most ``within`` seconds),
    and return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: T | None = None
    while loop.time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")
