"""Benchmark 1: many idle WebSocket connections on one runtime process (target: 10,000
connections under 1 GiB RSS).

Each connection authenticates (bearer header), subscribes to one of 100 sessions and then
stays idle, answering the server's heartbeat pings (every 5 s here) — what a fleet of idle
chat tabs looks like. The runtime uses the Redis backend (one Pub/Sub subscription per
session with local subscribers). Prints the runtime's RSS before and after, per
connection, and how many connections were still open after the hold period.

Run: ``uv run python bench/ws_idle.py [--connections 10000] [--hold 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import httpx2
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agentfleet_runtime.testing.redis import running_redis
from ws_common import headers, raise_nofile, rss_mib, runtime


async def main(args: argparse.Namespace) -> None:
    limit = raise_nofile()
    print(f"open-files limit: {limit}")
    with (
        running_redis() as redis,
        runtime(
            "idle",
            fake_url="http://127.0.0.1:9/unused",
            redis_url=redis.url,
            AGENTFLEET_REALTIME__HEARTBEAT_INTERVAL_SECONDS="5",
        ) as (url, pid),
    ):
        async with httpx2.AsyncClient(base_url=url, headers=headers()) as http:
            sessions = [
                (await http.post("/api/v1/sessions", json={"agent": "bench"})).json()["id"]
                for _ in range(100)
            ]
        base_rss = rss_mib(pid)
        ws_url = url.replace("http", "ws") + "/api/v1/ws"
        gate = asyncio.Semaphore(200)
        sockets: list[ClientConnection] = []
        pongs = 0

        async def keep(ws: ClientConnection) -> None:
            nonlocal pongs
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    if json.loads(raw)["type"] == "ping":
                        await ws.send('{"type":"pong"}')
                        pongs += 1

        async def open_one(i: int) -> None:
            async with gate:
                ws = await connect(
                    ws_url, additional_headers=headers(), ping_interval=None, open_timeout=60
                )
                await ws.recv()  # welcome
                await ws.send(json.dumps({"type": "subscribe", "session_id": sessions[i % 100]}))
                await ws.recv()  # subscribed
                sockets.append(ws)
                asyncio.get_running_loop().create_task(keep(ws))

        started = time.perf_counter()
        await asyncio.gather(*(open_one(i) for i in range(args.connections)))
        connect_s = time.perf_counter() - started
        await asyncio.sleep(args.hold)
        open_now = sum(ws.state.name == "OPEN" for ws in sockets)
        rss = rss_mib(pid)
        print(f"connections opened:        {len(sockets)} in {connect_s:.1f} s")
        print(f"still open after {args.hold:.0f} s:     {open_now} (pongs sent: {pongs})")
        print(f"runtime RSS before:        {base_rss:.0f} MiB")
        print(f"runtime RSS with sockets:  {rss:.0f} MiB (target < 1024 MiB)")
        per_connection = (rss - base_rss) * 1024 / max(1, len(sockets))
        print(f"RSS per connection:        {per_connection:.1f} KiB")
        for ws in sockets:
            ws.transport.abort()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=10.0)
    uvloop.run(main(parser.parse_args()))
