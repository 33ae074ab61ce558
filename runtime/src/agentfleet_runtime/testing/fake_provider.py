"""Run the fake model provider over real HTTP for a test::

async with running_fake_provider() as fake:
    fake.script.push(FakeReply(text="hello"))
    client = AsyncOpenAI(base_url=fake.openai_base_url, api_key="test")
    ...
    assert fake.script.requests[0].model == "fake-model"
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from agentfleet_runtime.providers.fake import FakeScript, create_fake_provider_app
from agentfleet_runtime.testing.servers import running_server


@dataclass(frozen=True, slots=True)
class RunningFakeProvider:
    """A fake provider being served. ``url`` includes the mount prefix, if any."""

    url: str
    script: FakeScript

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url


@contextlib.asynccontextmanager
async def running_fake_provider(
    script: FakeScript | None = None, *, prefix: str = ""
) -> AsyncIterator[RunningFakeProvider]:
    """Serve a fake provider on a free loopback port until the block exits; with
    ``prefix`` (e.g. ``"/fake-llm"``) it is mounted under that path, as ``agentfleet dev``
    mounts it."""
    script = script if script is not None else FakeScript()
    app: ASGIApp = create_fake_provider_app(script)
    if prefix:
        prefix = "/" + prefix.strip("/")
        app = Starlette(routes=[Mount(prefix, app=app)])
    async with running_server(app, lifespan="off") as server:
        yield RunningFakeProvider(url=server.url + prefix, script=script)
