"""Real MCP servers for the tool tests: the demo server over stdio (a subprocess) and over
streamable HTTP (mounted in a host app, or standalone as a subprocess), a deliberately slow
server, and a TCP server that accepts connections and never answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1.mcpserver import MCPTimeouts, MCPTransport
from agentfleet_runtime.testing.servers import RunningServer, free_port, running_server
from agentfleet_runtime.tools.mcp.demo_server import DemoServerApp, demo_server_asgi

DEMO_MODULE = "agentfleet_runtime.tools.mcp.demo_server"


def timeouts(connect: float = 10.0, call: float = 10.0, discovery: float = 10.0) -> MCPTimeouts:
    return MCPTimeouts(connect_seconds=connect, call_seconds=call, discovery_seconds=discovery)


def stdio_config(name: str = "demo", **kwargs: Any) -> ResolvedMCPServer:
    return ResolvedMCPServer(
        name=name,
        transport=MCPTransport.STDIO,
        command=sys.executable,
        args=["-m", DEMO_MODULE, "--transport", "stdio"],
        **kwargs,
    )


def http_config(url: str, name: str = "demo", **kwargs: Any) -> ResolvedMCPServer:
    return ResolvedMCPServer(name=name, transport=MCPTransport.STREAMABLE_HTTP, url=url, **kwargs)


def host_app(
    *mounts: tuple[str, DemoServerApp], middleware: Sequence[Middleware] | None = None
) -> Starlette:
    """A host app mounting MCP apps, running their lifespans in its own (as the dev server
    does: a mounted app's lifespan does not run)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for _prefix, demo in mounts:
                await stack.enter_async_context(demo.lifespan())
            yield

    return Starlette(
        routes=[Mount(prefix, app=demo.app) for prefix, demo in mounts],
        lifespan=lifespan,
        middleware=middleware,
    )


@contextlib.asynccontextmanager
async def serve_mounted_demo(
    prefix: str = "/mcp/demo",
    *,
    port: int | None = None,
) -> AsyncIterator[RunningServer]:
    """The demo server mounted at ``prefix`` in a host app served over real HTTP."""
    async with running_server(host_app((prefix, demo_server_asgi())), port=port) as server:
        yield server


def build_slow_server(list_delay: float = 0.0) -> MCPServer:
    """A server with a ``sleep`` tool, whose first ``tools/list`` answers after
    ``list_delay``."""
    listings = 0

    async def slow_listing(
        ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        nonlocal listings
        if ctx.method == "tools/list":
            listings += 1
            if listings == 1:
                await asyncio.sleep(list_delay)
        return await call_next(ctx)

    server = MCPServer("slow", middleware=[slow_listing] if list_delay else None)

    @server.tool()
    async def sleep(seconds: float) -> str:
        """Sleep, then say so."""
        await asyncio.sleep(seconds)
        return f"slept {seconds}s"

    return server


@contextlib.asynccontextmanager
async def serve_slow(list_delay: float = 0.0) -> AsyncIterator[str]:
    server = build_slow_server(list_delay)
    app = server.streamable_http_app(
        streamable_http_path="/", stateless_http=True, json_response=True
    )
    demo = DemoServerApp(app=app, lifespan=server.session_manager.run)
    async with running_server(host_app(("/mcp", demo))) as running:
        yield f"{running.url}/mcp/"


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[str]:
    """A TCP server that accepts connections, reads what it is sent and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp/"
    finally:
        for writer in held:
            writer.close()
        server.close()


def dead_url() -> str:
    """A URL on a port nobody listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/mcp/"


@dataclass
class StandaloneDemo:
    """The demo server run as ``python -m ... --transport streamable-http`` (a subprocess)."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self, timeout: float = 20.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                DEMO_MODULE,
                "--transport",
                "streamable-http",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"demo server exited with {self.process.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError("the standalone demo server did not start listening")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def standalone_demo() -> Iterator[StandaloneDemo]:
    demo = StandaloneDemo(port=free_port())
    demo.start()
    try:
        yield demo
    finally:
        demo.kill()


#: A stdio MCP server with a ``sleep`` tool (the marker names its process).
SLOW_STDIO_SCRIPT = """# slow-mcp-server
import asyncio
from mcp.server import MCPServer

server = MCPServer("slow")


@server.tool()
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds}s"


server.run()
"""


def slow_stdio_config(**kwargs: Any) -> ResolvedMCPServer:
    return ResolvedMCPServer(
        name="slow",
        transport=MCPTransport.STDIO,
        command=sys.executable,
        args=["-c", SLOW_STDIO_SCRIPT],
        **kwargs,
    )


def demo_children(marker: str = DEMO_MODULE) -> list[int]:
    """Pids of this process's children whose command line holds ``marker`` (Linux)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if (
            state != "Z"
            and int(parent) == os.getpid()
            and marker in cmdline
            and "streamable-http" not in cmdline
        ):
            pids.append(int(entry.name))
    return pids


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def mounted_demo() -> Callable[..., AbstractAsyncContextManager[RunningServer]]:
    return serve_mounted_demo
