"""``agentfleet chat``: talk to an agent from a terminal, tokens printed as they arrive."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from agentfleet.client import AgentfleetClient


async def run_chat(
    url: str,
    *,
    agent: str,
    session_id: str | None = None,
    token: str | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> str:
    """A conversation until end of input or ``/quit``; returns the session id."""
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    async with AgentfleetClient(url, token=token) as client:
        if session_id is None:
            session_id = (await client.create_session(agent)).id
            after = 0
        else:
            await client.get_session(session_id)
            history = await client.events(session_id)
            after = history[-1].id if history else 0
        out.write(f"session {session_id} (agent {agent}) — type a message; /quit to leave\n")
        out.flush()
        async with client.realtime() as rt:
            await rt.wait_connected()
            await rt.subscribe(session_id, after=after)
            events = rt.events(session_id)
            while True:
                out.write("> ")
                out.flush()
                line = await asyncio.to_thread(stdin.readline)
                if not line or line.strip() in ("/quit", "/exit"):
                    break
                if not line.strip():
                    continue
                ack = await rt.send(session_id, line.strip())
                streamed = False
                async for event in events:
                    if event.turn_id != ack.turn_id:
                        continue
                    if event.type == "model.delta":
                        out.write(str(event.data.get("text", "")))
                        streamed = True
                    elif event.type == "turn.resumed":
                        out.write("\n[the turn moved to another replica; restarting]\n")
                    elif event.type == "tool.call":
                        out.write(
                            f"\n[tool {event.data.get('name')}({event.data.get('arguments')})"
                        )
                    elif event.type == "tool.result":
                        out.write(f" → {event.data.get('content')}]\n")
                        streamed = False
                    elif event.type == "model.message" and streamed:
                        streamed = True
                    elif event.type == "turn.completed":
                        if not streamed:
                            out.write(str(event.data.get("answer", {}).get("content", "")))
                        out.write("\n")
                        break
                    elif event.type == "turn.failed":
                        out.write(f"\n[turn failed: {event.data.get('detail')}]\n")
                        break
                    out.flush()
                out.flush()
    return session_id
