"""Benchmark 2: one event fanned out to 1,000 WebSocket subscribers across 2 replicas
(target: p99 delivery under 100 ms).

Two ``agentfleet serve`` processes share one Redis. 1,000 clients (500 per replica)
subscribe to the same session; turns run in that session (accepted by replica A), and
every event each turn produces is delivered to all 1,000. Delivery latency = when a
subscriber received the event - when the event was recorded (its ``ts``, the Redis append
on replica A), for every (event, subscriber) pair. The subscribers live in
``--client-procs`` processes (this machine has 2 cores: the clients compete with the
replicas and Redis for CPU, which is included in the figure).

Run: ``uv run python bench/ws_fanout.py [--subscribers 1000] [--turns 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from typing import Any

import httpx2
import uvloop
from websockets.asyncio.client import connect

from agentfleet_runtime.providers.fake.script import FakeReply, FakeScript
from agentfleet_runtime.testing.fake_provider import running_fake_provider
from agentfleet_runtime.testing.redis import running_redis
from ws_common import TOKEN, headers, percentile, raise_nofile, runtime


async def subscribers(urls: list[str], count: int, session: str, expect: int, out: Any) -> None:
    latencies: list[tuple[str, float]] = []
    ready = 0

    async def one(i: int) -> None:
        nonlocal ready
        url = urls[i % len(urls)]
        async with connect(
            url, additional_headers={"Authorization": f"Bearer {TOKEN}"}, ping_interval=None
        ) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "subscribe", "session_id": session}))
            await ws.recv()
            ready += 1
            got = 0
            while got < expect:
                frame = json.loads(await ws.recv())
                now = time.time()
                if frame["type"] == "event":
                    event = frame["event"]
                    latencies.append((event["type"], now - event["ts"]))
                    got += 1
                elif frame["type"] == "ping":
                    await ws.send('{"type":"pong"}')

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    while ready < count:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    out.put(("ready", count))
    await asyncio.gather(*tasks)
    out.put(("latencies", latencies))


def subscriber_process(urls: list[str], count: int, session: str, expect: int, out: Any) -> None:
    raise_nofile()
    uvloop.run(subscribers(urls, count, session, expect, out))


async def main(args: argparse.Namespace) -> None:
    raise_nofile()
    script = FakeScript(fallback=FakeReply(text="one two three"))
    async with running_fake_provider(script) as fake:
        with (
            running_redis() as redis,
            runtime("A", fake_url=fake.url, redis_url=redis.url) as (url_a, _),
            runtime("B", fake_url=fake.url, redis_url=redis.url) as (url_b, _),
        ):
            async with httpx2.AsyncClient(base_url=url_a, headers=headers(), timeout=60) as http:
                created = await http.post("/api/v1/sessions", json={"agent": "bench"})
                session = created.json()["id"]
                # Each turn: turn.started, 3 model.delta, model.message, turn.completed.
                per_turn = 6
                expect = per_turn * args.turns
                ws_urls = [u.replace("http", "ws") + "/api/v1/ws" for u in (url_a, url_b)]
                queue: Any = multiprocessing.get_context("spawn").Queue()
                share = args.subscribers // args.client_procs
                procs = [
                    multiprocessing.get_context("spawn").Process(
                        target=subscriber_process, args=(ws_urls, share, session, expect, queue)
                    )
                    for _ in range(args.client_procs)
                ]
                for proc in procs:
                    proc.start()
                for _ in procs:
                    await asyncio.to_thread(queue.get)
                for _ in range(args.turns):
                    await http.post(
                        f"/api/v1/sessions/{session}/messages/stream", json={"content": "x"}
                    )
                    await asyncio.sleep(0.3)
                latencies: list[tuple[str, float]] = []
                for _ in procs:
                    _, values = await asyncio.to_thread(queue.get)
                    latencies.extend(values)
                for proc in procs:
                    proc.join(30)
    print(f"subscribers: {args.subscribers} (2 replicas, {args.client_procs} client processes)")
    print(f"deliveries:  {len(latencies)} ({args.turns} turns x {per_turn} events x subscribers)")
    first = [v * 1000 for kind, v in latencies if kind == "turn.started"]
    every = [v * 1000 for _, v in latencies]
    for label, ms in (("one event (turn.started)", first), ("all events (bursts of 6)", every)):
        print(
            f"{label:26} p50 {percentile(ms, 0.5):6.1f} ms  p90 {percentile(ms, 0.9):6.1f} ms  "
            f"p99 {percentile(ms, 0.99):6.1f} ms  max {max(ms):6.1f} ms (target p99 < 100 ms)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--client-procs", type=int, default=2)
    uvloop.run(main(parser.parse_args()))
