"""Replica registration: every runtime writes its record into the state backend; the
others see it, ready or not, and see it go stale when it stops beating."""

from __future__ import annotations

import asyncio
from typing import Any

from agentfleet_runtime.testing.redis import RedisServer

from .conftest import ClusterRuntime, StartRuntime, agent_config, demo_mcp


async def _instances(runtime: ClusterRuntime) -> list[dict[str, Any]]:
    response = await runtime.client.get("/api/v1/admin/instances")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _until(runtime: ClusterRuntime, check: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for _ in range(100):
        items = await _instances(runtime)
        if check(items):
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {items}")


async def test_a_replica_registers_what_it_runs(start_runtime: StartRuntime) -> None:
    slow_beats = {"discovery": {"config_poll_seconds": 3600, "heartbeat_seconds": 3600}}
    async with (
        demo_mcp() as mcp,
        start_runtime(agent_config("calc", mcp), **slow_beats) as runtime,
    ):
        # the first beat (before the agents loaded) said not ready; once they loaded the
        # replica wrote its record again at once, not an interval later
        items = await _until(runtime, lambda i: i and i[0]["ready"])
        (me,) = items
        assert me["id"] == runtime.app.state.replica
        assert me["agents"] == ["calc"]
        assert me["state"] == "ready"
        config = (await runtime.client.get("/api/v1/admin/config")).json()
        assert me["config_digest"] == config["digest"] is not None
        assert me["degraded"] is False


async def test_replicas_on_redis_see_each_other_and_a_silent_one_goes_stale(
    start_runtime: StartRuntime, redis_server: RedisServer
) -> None:
    redis = {"backend": "redis", "redis_url": redis_server.url}
    async with (
        demo_mcp() as mcp,
        start_runtime(agent_config("calc", mcp), state=redis, replica_id="a") as a,
    ):
        async with start_runtime(agent_config("calc", mcp), state=redis, replica_id="b") as b:
            items = await _until(
                a, lambda i: {x["id"] for x in i if x["state"] == "ready"} == {"a", "b"}
            )
            assert all(x["address"] for x in items)
            assert all(x["version"] for x in items)
            # b stops beating without deregistering (a crash): stale after 3 intervals
            await b.app.state.discovery.heartbeat.aclose()
            await _until(a, lambda i: {x["id"]: x["state"] for x in i}.get("b") == "stale")
        # a clean shutdown deregisters (b's lifespan ran its finally)
        await _until(a, lambda i: [x["id"] for x in i] == ["a"])
