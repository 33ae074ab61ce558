"""``mcp-bridge`` / ``agentfleet mcp bridge``: serve a stdio-only MCP server over streamable
HTTP, so the operator can host it as a Deployment + Service like any other MCP server.

    mcp-bridge --host 0.0.0.0 --port 8080 --path /mcp -- npx -y @some/mcp-server --flag

The bridge is a proxy: an MCP server (the SDK's low-level ``Server``) whose tool requests
are forwarded, as they are, to one long-lived stdio session with the wrapped command. The
upstream process starts on the first request and is restarted on the next request after
it dies; requests are bounded by a timeout. Tools are what agents use, so tools are what
the bridge forwards (``tools/list``, ``tools/call``); resources and prompts are not bridged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.server.lowlevel import Server
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolRequestParams, CallToolResult, ListToolsResult, TextContent
from starlette.types import ASGIApp

log = logging.getLogger(__name__)


class StdioUpstream:
    """One stdio MCP session with the wrapped command, owned by a dedicated task (the SDK's
    client contexts must be entered and left in the same task)."""

    def __init__(self, params: StdioServerParameters, *, timeout_seconds: float = 60.0) -> None:
        self.params = params
        self.timeout_seconds = timeout_seconds
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self.starts = 0

    async def client(self) -> Client:
        """The live session, starting the command (again) when there is none."""
        async with self._lock:
            if self._client is None or self._task is None or self._task.done():
                await self._start()
            assert self._client is not None
            return self._client

    async def _start(self) -> None:
        await self._stop_task()
        ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready), name="mcp-bridge upstream")
        async with asyncio.timeout(self.timeout_seconds):
            await ready.wait()
        if self._client is None:
            raise RuntimeError(f"the wrapped MCP server {self.params.command!r} did not start")
        self.starts += 1
        log.info("upstream started", extra={"command": self.params.command, "starts": self.starts})

    async def _run(self, ready: asyncio.Event) -> None:
        try:
            async with Client(self.params, mode="auto", cache=None) as client:
                self._client = client
                ready.set()
                await self._stop.wait()
        except Exception:  # the command failed or exited: the next request restarts it
            log.exception("upstream ended", extra={"command": self.params.command})
        finally:
            self._client = None
            ready.set()

    def lost(self) -> None:
        """Forget a session whose requests fail: the next request starts a fresh one."""
        self._stop.set()

    async def _stop_task(self) -> None:
        if self._task is not None and not self._task.done():
            self._stop.set()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await self._task
        self._task = None

    async def aclose(self) -> None:
        async with self._lock:
            await self._stop_task()


def _tool_error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def build_bridge(upstream: StdioUpstream, *, name: str = "agentfleet-mcp-bridge") -> Server[Any]:
    """The MCP server that forwards tool requests to ``upstream``."""

    async def list_tools(_ctx: Any, params: Any) -> ListToolsResult:
        cursor = getattr(params, "cursor", None)
        for attempt in (1, 2):  # listing is idempotent: once more on a fresh process
            client = await upstream.client()
            try:
                async with asyncio.timeout(upstream.timeout_seconds):
                    return await client.list_tools(cursor=cursor)
            except Exception:
                upstream.lost()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def call_tool(_ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        client = await upstream.client()
        try:
            async with asyncio.timeout(upstream.timeout_seconds):
                return await client.call_tool(params.name, params.arguments)
        except TimeoutError:
            return _tool_error(f"tool {params.name} timed out after {upstream.timeout_seconds}s")
        except Exception as exc:
            # The process died or broke the protocol. The call may or may not have run, so
            # it is not repeated here; the next request gets a fresh process.
            upstream.lost()
            log.warning("upstream failed during %s: %s", params.name, exc)
            return _tool_error(
                f"the MCP server process failed during {params.name} ({exc}); it is being "
                "restarted. The call may or may not have taken effect."
            )

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def bridge_app(
    command: Sequence[str],
    *,
    path: str = "/mcp",
    host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] | None = None,
    timeout_seconds: float = 60.0,
) -> tuple[ASGIApp, StdioUpstream]:
    """The streamable-HTTP app serving ``command``'s tools at ``path``. ``allowed_hosts``
    (Host header values) turns on DNS-rebinding protection; off when ``None``."""
    if not command:
        raise ValueError("the bridge needs the stdio server's command")
    upstream = StdioUpstream(
        StdioServerParameters(command=command[0], args=list(command[1:]), env=dict(os.environ)),
        timeout_seconds=timeout_seconds,
    )
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=allowed_hosts is not None,
        allowed_hosts=list(allowed_hosts or []),
    )
    app = build_bridge(upstream).streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,
        json_response=True,
        transport_security=security,
        host=host,
    )
    return app, upstream


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mcp-bridge",
        description="Serve a stdio MCP server over streamable HTTP.",
        epilog="example: mcp-bridge --port 8080 -- python -m my_server",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--path", default="/mcp", help="HTTP path of the MCP endpoint")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument(
        "--allowed-host", action="append", dest="allowed_hosts", help="accepted Host header"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the stdio server's command after --")
    import uvicorn

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    app, _ = bridge_app(
        command,
        path=args.path,
        host=args.host,
        allowed_hosts=args.allowed_hosts,
        timeout_seconds=args.timeout,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
