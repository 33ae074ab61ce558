"""The end-to-end conversation: what a user does with an agent, over HTTP and WebSocket.

Used by ``e2e/run.sh`` against an agent reached through ``kubectl port-forward``:

    python e2e/converse.py start --url http://127.0.0.1:18080 --agent demo > session.txt
    python e2e/converse.py websocket --url ... --session "$(cat session.txt)"
    python e2e/converse.py survived --url ... --session "$(cat session.txt)"

``start`` opens a session and has a turn over REST (the agent calls the ``calculate`` tool),
printing the session id; ``websocket`` has a turn over the session's WebSocket; ``survived``
(run after the agent's pods were killed) checks that the whole conversation is still
there and that the session goes on. Every failure exits non-zero with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

import httpx2
from websockets.asyncio.client import connect

TIMEOUT = 60.0


def fail(message: str) -> None:
    print(f"converse: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def say(message: str) -> None:
    print(f"converse: {message}", file=sys.stderr)


def turn(client: httpx2.Client, session: str, content: str) -> dict[str, Any]:
    response = client.post(f"/api/v1/sessions/{session}/messages", json={"content": content})
    if response.status_code != 200:
        fail(f"POST messages answered {response.status_code}: {response.text[:500]}")
    result: dict[str, Any] = response.json()
    return result


def start(url: str, agent: str) -> None:
    with httpx2.Client(base_url=url, timeout=TIMEOUT) as client:
        response = client.post("/api/v1/sessions", json={"agent": agent})
        if response.status_code not in (200, 201):
            fail(f"POST sessions answered {response.status_code}: {response.text[:500]}")
        session = str(response.json()["id"])
        result = turn(client, session, "calculate 2*(3+4)")
        answer = str(result["answer"]["content"])
        tools = [call["name"] for call in result.get("tool_calls", [])]
        if "calculate" not in tools or "14" not in answer:
            fail(f"expected the calculate tool and 14, got tools {tools}, answer {answer!r}")
        say(f"REST turn ok in session {session}: {answer!r}")
        print(session)


async def _websocket_turn(url: str, session: str) -> None:
    ws_url = url.replace("http://", "ws://", 1) + f"/api/v1/sessions/{session}/ws?after=0"
    key = f"e2e-{uuid.uuid4().hex}"
    sent = False
    turn_id: str | None = None
    replayed = 0
    deadline = time.monotonic() + TIMEOUT
    async with connect(ws_url, open_timeout=TIMEOUT) as socket:
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(socket.recv(), timeout=deadline - time.monotonic())
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "ping":
                await socket.send(json.dumps({"type": "pong", "ts": frame.get("ts")}))
            elif kind == "error":
                fail(f"WebSocket error frame: {frame}")
            elif kind == "ack":
                turn_id = str(frame["turn_id"])
            elif kind == "event":
                event = frame["event"]
                if event.get("turn_id") != turn_id or turn_id is None:
                    replayed += 1  # the session's earlier events (after=0 replays them)
                elif event["type"] == "turn.completed":
                    answer = event.get("data", {}).get("answer", {}).get("content", "")
                    say(f"WebSocket turn ok ({replayed} earlier events replayed): {answer!r}")
                    return
                elif event["type"] == "turn.failed":
                    fail(f"the WebSocket turn failed: {event}")
            if not sent:
                message = {
                    "type": "message",
                    "content": "convert_units 10 km to miles",
                    "idempotency_key": key,
                }
                await socket.send(json.dumps(message))
                sent = True
    fail(f"no turn.completed for turn {turn_id} over the WebSocket within {TIMEOUT:.0f}s")


def websocket(url: str, session: str) -> None:
    asyncio.run(_websocket_turn(url, session))


def survived(url: str, session: str, min_messages: int) -> None:
    with httpx2.Client(base_url=url, timeout=TIMEOUT) as client:
        response = client.get(f"/api/v1/sessions/{session}/messages")
        if response.status_code != 200:
            fail(f"the session is gone after the pods were killed: {response.status_code}")
        body = response.json()
        messages = body if isinstance(body, list) else body.get("messages", body.get("items", []))
        if len(messages) < min_messages:
            fail(f"expected at least {min_messages} messages, found {len(messages)}")
        text = json.dumps(messages)
        if "2*(3+4)" not in text:
            fail("the first REST turn is missing from the conversation")
        result = turn(client, session, "calculate 6*7")
        if "42" not in str(result["answer"]["content"]):
            fail(f"the session did not go on: {result['answer']!r}")
        say(f"conversation survived: {len(messages)} messages kept, and it goes on")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "websocket", "survived"):
        command = commands.add_parser(name)
        command.add_argument("--url", required=True)
        if name == "start":
            command.add_argument("--agent", required=True)
        else:
            command.add_argument("--session", required=True)
        if name == "survived":
            command.add_argument("--min-messages", type=int, default=4)
    args = parser.parse_args(argv)
    if args.command == "start":
        start(args.url, args.agent)
    elif args.command == "websocket":
        websocket(args.url, args.session)
    else:
        survived(args.url, args.session, args.min_messages)


if __name__ == "__main__":
    main()
