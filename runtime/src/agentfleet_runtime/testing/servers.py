"""Serve an ASGI app over real HTTP on a free loopback port, inside the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import uvicorn
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from mcp.server import MCPServer


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True, slots=True)
class RunningServer:
    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def running_server(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    lifespan: Literal["auto", "on", "off"] = "auto",
    ws: Literal["auto", "websockets", "websockets-sansio", "wsproto", "none"] = "websockets-sansio",
) -> AsyncIterator[RunningServer]:
    """Run ``app`` with uvicorn as a task of the current loop until the block exits."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port or free_port(host),
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        ws=ws,
        timeout_graceful_shutdown=2,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the start-up error
                raise RuntimeError("server exited during start-up")
            await asyncio.sleep(0.01)
        yield RunningServer(host=host, port=config.port, server=server)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


@contextlib.asynccontextmanager
async def running_demo_mcp(server: MCPServer | None = None) -> AsyncIterator[str]:
    """The bundled demo MCP server (or ``server``) over streamable HTTP on a free port;
    yields its URL."""
    from fastapi import FastAPI
    from starlette.routing import Mount

    from agentfleet_runtime.tools.mcp.demo_server import demo_server_asgi

    mcp_app, lifespan = demo_server_asgi(server=server)

    @contextlib.asynccontextmanager
    async def app_lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with lifespan():
            yield

    host = FastAPI(lifespan=app_lifespan, routes=[Mount("/mcp", app=mcp_app)])
    async with running_server(host) as running:
        yield f"{running.url}/mcp/"
