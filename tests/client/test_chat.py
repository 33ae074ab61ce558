"""``agentfleet chat`` as a person runs it: a real process reading stdin, against a real
runtime, printing the streamed answer."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from agentfleet import AgentfleetClient

from .conftest import TOKEN, Served

CLI = str(Path(sys.executable).parent / "agentfleet")


async def test_agentfleet_chat_streams_the_answer(served: Served) -> None:
    async with AgentfleetClient(served.url, token=TOKEN) as client:
        await client.create_agent(
            "helper", {"systemPrompt": "x", "model": {"provider": "fake", "name": "fake-model"}}
        )
    served.fake.script.push_text("Hello from the agent, token by token.")
    proc = await asyncio.create_subprocess_exec(
        CLI, "chat", "--url", served.url, "--agent", "helper",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AGENTFLEET_TOKEN": TOKEN},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(b"hi there\n/quit\n"), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert text.startswith("session ses_")
    assert "Hello from the agent, token by token." in text
    assert served.fake.script.last_request.stream is True  # tokens were streamed
