"""Benchmark 3: from the model provider emitting a token to a WebSocket client receiving
it (target: p50 under 5 ms).

The fake model provider runs in this process, wrapped so that the moment each streamed
token leaves it (the ASGI body message carrying it) is recorded; the runtime is a
separate ``agentfleet serve`` process (OpenAI SDK over HTTP → LangGraph → event log →
fan-out → WebSocket); the WebSocket client runs in this process too, so both timestamps
come from one clock. Run for the memory and the Redis backends.

Run: ``uv run python bench/ws_token_latency.py [--tokens 300] [--backend both]``
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import httpx2
import uvloop
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from websockets.asyncio.client import connect

from agentfleet_runtime.providers.fake import FakeScript, create_fake_provider_app
from agentfleet_runtime.providers.fake.script import FakeReply
from agentfleet_runtime.testing.redis import running_redis
from agentfleet_runtime.testing.servers import running_server
from ws_common import TOKEN, headers, percentile, runtime


class Stamped:
    """Records when each streamed content token is handed to the server to send."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.sent: list[tuple[float, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.body":
                for line in message.get("body", b"").split(b"\n"):
                    if line.startswith(b"data: {"):
                        chunk = json.loads(line[6:])
                        for choice in chunk.get("choices", []):
                            text = (choice.get("delta") or {}).get("content")
                            if text:
                                self.sent.append((time.perf_counter(), text))
            await send(message)

        await self.app(scope, receive, stamped)


async def measure(backend: str, tokens: int) -> list[float]:
    script = FakeScript()
    stamped = Stamped(create_fake_provider_app(script))
    async with running_server(stamped, lifespan="off") as fake:
        with (
            running_redis() as redis,
            runtime(
                backend, fake_url=fake.url, redis_url=redis.url if backend == "redis" else None
            ) as (url, _),
        ):
            async with httpx2.AsyncClient(base_url=url, headers=headers()) as http:
                sid = (await http.post("/api/v1/sessions", json={"agent": "bench"})).json()["id"]
            text = " ".join(f"tok{i}" for i in range(tokens))
            script.push(FakeReply(text=text, chunk_delay_seconds=0.01))
            received: list[tuple[float, str]] = []
            ws_url = url.replace("http", "ws") + "/api/v1/ws"
            async with connect(
                ws_url,
                additional_headers={"Authorization": f"Bearer {TOKEN}"},
                ping_interval=None,
            ) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "subscribe", "session_id": sid}))
                await ws.recv()
                await ws.send(json.dumps({"type": "message", "session_id": sid, "content": "go"}))
                while True:
                    frame: dict[str, Any] = json.loads(await ws.recv())
                    now = time.perf_counter()
                    if frame["type"] != "event":
                        continue
                    event = frame["event"]
                    if event["type"] == "model.delta":
                        received.append((now, event["data"]["text"]))
                    elif event["type"] in ("turn.completed", "turn.failed"):
                        break
    sent = stamped.sent
    assert [t for _, t in sent] == [t for _, t in received], "token streams differ"
    return [(r - s) * 1000 for (s, _), (r, _) in zip(sent, received, strict=True)]


async def main(args: argparse.Namespace) -> None:
    backends = ["memory", "redis"] if args.backend == "both" else [args.backend]
    for backend in backends:
        ms = await measure(backend, args.tokens)
        print(
            f"{backend:6}  tokens {len(ms)}  p50 {percentile(ms, 0.5):.2f} ms  "
            f"p90 {percentile(ms, 0.9):.2f} ms  p99 {percentile(ms, 0.99):.2f} ms "
            "(target p50 < 5 ms)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--backend", choices=["memory", "redis", "both"], default="both")
    uvloop.run(main(parser.parse_args()))
