"""The work queue (dedup, one reconcile per key at a time, delays, backoff) and leader
election on a Lease in the emulated API (two candidates, expiry, release, loss)."""

from __future__ import annotations

import asyncio

import pytest

from agentfleet_operator.controller.queue import Key, WorkQueue
from agentfleet_operator.kube import KubeClient
from agentfleet_operator.kube.resources import LEASES
from agentfleet_operator.leader import LeaderElector
from agentfleet_operator.observability import OperatorMetrics
from agentfleet_operator.testing.waiting import eventually

A, B = Key("Agent", "ns", "a"), Key("Agent", "ns", "b")


async def test_keys_are_deduplicated_and_never_reconciled_concurrently() -> None:
    running: set[Key] = set()
    calls: list[Key] = []
    overlap = False
    release = asyncio.Event()

    async def reconcile(key: Key) -> float | None:
        nonlocal overlap
        overlap = overlap or key in running
        running.add(key)
        calls.append(key)
        await release.wait()
        running.discard(key)
        return None

    queue = WorkQueue(reconcile, workers=4)
    queue.start()
    try:
        for _ in range(5):
            queue.add(A)
        queue.add(B)
        await eventually(lambda: _true(len(calls) == 2), what="both keys started")
        queue.add(A)  # while A runs: once more afterwards, not concurrently
        queue.add(A)
        release.set()
        await asyncio.wait_for(queue.wait_idle(), 2)
        assert sorted(calls) == [A, A, B]
        assert not overlap
    finally:
        await queue.stop()


async def _true(value: bool) -> bool:
    return value


async def test_requeue_after_and_error_backoff() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    metrics = OperatorMetrics()

    async def reconcile(key: Key) -> float | None:
        calls.append(loop.time())
        if len(calls) == 1:
            return 0.1  # "come back later"
        if len(calls) == 2:
            raise RuntimeError("boom")  # backoff: 1 s
        return None

    queue = WorkQueue(reconcile, workers=1, metrics=metrics)
    queue.start()
    try:
        queue.add(A)
        await eventually(lambda: _true(len(calls) == 3), within=3, what="three runs")
        assert calls[1] - calls[0] >= 0.09
        assert calls[2] - calls[1] >= 0.95
        queue.add(B, delay=5)
        queue.add(B, delay=0.05)  # the earliest request wins
        await eventually(lambda: _true(len(calls) == 4), within=1, what="the early retry")
        queue.forget(A)
    finally:
        await queue.stop()
    value = metrics.reconciles.labels(kind="Agent", result="error")._value.get()
    assert value == 1
    assert metrics.reconciles.labels(kind="Agent", result="requeued")._value.get() == 1


async def test_leader_election(kube: KubeClient) -> None:
    first = LeaderElector(
        kube, namespace="ops", name="lease", identity="one", lease_duration=1.5, retry_period=0.1
    )
    second = LeaderElector(
        kube, namespace="ops", name="lease", identity="two", lease_duration=1.5, retry_period=0.1
    )
    assert await first.try_acquire_or_renew()
    assert not await second.try_acquire_or_renew()
    lease = await kube.get(LEASES, "ops", "lease")
    assert lease["spec"]["holderIdentity"] == "one"
    assert lease["spec"]["leaseTransitions"] == 0

    # The holder stops renewing: the other takes over once the record is stale.
    acquiring = asyncio.create_task(second.acquire())
    await asyncio.sleep(0.5)
    assert not acquiring.done()
    await asyncio.wait_for(acquiring, 3)
    lease = await kube.get(LEASES, "ops", "lease")
    assert lease["spec"]["holderIdentity"] == "two"
    assert lease["spec"]["leaseTransitions"] == 1

    # The former leader finds out when renewing, and reports the loss.
    lost = asyncio.Event()
    first.is_leader = True
    await asyncio.wait_for(first.hold(lost), 3)
    assert lost.is_set()
    assert not first.is_leader

    # A clean shutdown releases the Lease: a candidate takes it at once.
    await second.release()
    third = LeaderElector(kube, namespace="ops", name="lease", identity="three", lease_duration=30)
    assert await third.try_acquire_or_renew()


def test_leader_timings_are_validated(kube: KubeClient) -> None:
    with pytest.raises(ValueError, match="retry_period"):
        LeaderElector(kube, namespace="n", name="l", identity="i", lease_duration=1, retry_period=2)
