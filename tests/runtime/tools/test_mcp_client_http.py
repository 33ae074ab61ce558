"""``MCPToolServer`` over streamable HTTP, against real servers on real ports: the demo server
mounted in a host app (as ``agentfleet dev`` does) and run standalone as a subprocess."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from agentfleet_runtime.errors import (
    DependencyAuthError,
    DependencyConnectionError,
    DependencyTimeoutError,
    OverloadedError,
)
from agentfleet_runtime.testing.servers import running_server
from agentfleet_runtime.tools.base import ToolResult
from agentfleet_runtime.tools.mcp.client import MCPToolServer
from agentfleet_runtime.tools.mcp.demo_server import demo_server_asgi

from .conftest import (
    StandaloneDemo,
    black_hole,
    dead_url,
    host_app,
    http_config,
    serve_mounted_demo,
    serve_slow,
    timeouts,
)

DEMO_TOOLS = {"calculate", "current_time", "convert_units", "text_stats", "remember", "recall"}


@pytest.mark.parametrize("path", ["/mcp/demo/", "/mcp/demo"])
async def test_mounted_demo_server(path: str) -> None:
    async with (
        serve_mounted_demo() as running,
        MCPToolServer(http_config(running.url + path)) as server,
    ):
        assert {tool.name for tool in await server.list_tools()} == DEMO_TOOLS
        assert (await server.call_tool("calculate", {"expression": "sqrt(81)"})).content == "9.0"
        stats = await server.call_tool("text_stats", {"text": "One. Two three."})
        assert stats.structured is not None
        assert stats.structured["sentences"] == 2
        error = await server.call_tool(
            "convert_units", {"value": 1, "from_unit": "kg", "to_unit": "K"}
        )
        assert error.is_error
        assert "cannot convert mass" in error.content
        # Stateless HTTP: notes still live as long as the server process.
        await server.call_tool("remember", {"key": "city", "value": "Oslo"})
        recalled = await server.call_tool("recall", {"key": "city"})
        assert recalled.structured == {"key": "city", "value": "Oslo"}


async def test_twenty_concurrent_calls() -> None:
    async with (
        serve_mounted_demo() as running,
        MCPToolServer(http_config(running.url + "/mcp/demo/")) as server,
    ):
        results = await asyncio.gather(
            *(server.call_tool("calculate", {"expression": f"{i} + 100"}) for i in range(20))
        )
        assert [r.content for r in results] == [str(i + 100) for i in range(20)]


async def test_concurrent_slow_calls_run_in_parallel() -> None:
    async with serve_slow() as url, MCPToolServer(http_config(url, name="slow")) as server:
        started = time.monotonic()
        results = await asyncio.gather(
            *(server.call_tool("sleep", {"seconds": 0.5}) for _ in range(20))
        )
        assert time.monotonic() - started < 3
        assert {r.content for r in results} == {"slept 0.5s"}


async def test_a_slow_call_times_out_and_the_connection_survives() -> None:
    async with serve_slow() as url:
        config = http_config(url, name="slow", timeouts=timeouts(call=0.3))
        async with MCPToolServer(config) as server:
            started = time.monotonic()
            with pytest.raises(DependencyTimeoutError, match=r"within 0.3s") as caught:
                await server.call_tool("sleep", {"seconds": 10})
            assert time.monotonic() - started < 1.5
            assert caught.value.dependency == "mcp:slow"
            assert caught.value.retryable
            assert (await server.call_tool("sleep", {"seconds": 0})).content == "slept 0.0s"


async def test_a_dead_url_fails_fast() -> None:
    server = MCPToolServer(http_config(dead_url(), name="gone"))
    started = time.monotonic()
    with pytest.raises(DependencyConnectionError) as caught:
        await server.start()
    assert time.monotonic() - started < 2
    assert caught.value.dependency == "mcp:gone"
    with pytest.raises(DependencyConnectionError):  # calls try to connect again, and fail
        await server.call_tool("calculate", {"expression": "1"})
    await server.aclose()


async def test_a_server_that_accepts_but_never_answers_is_bounded() -> None:
    async with black_hole() as url:
        server = MCPToolServer(http_config(url, name="hole", timeouts=timeouts(connect=0.5)))
        started = time.monotonic()
        with pytest.raises(DependencyTimeoutError, match=r"handshake within 0.5s"):
            await server.start()
        assert time.monotonic() - started < 2

        # Discovery without an explicit start is bounded by the tighter of the two timeouts.
        config = http_config(url, name="hole", timeouts=timeouts(connect=5, discovery=0.5))
        discovering = MCPToolServer(config)
        started = time.monotonic()
        with pytest.raises(DependencyTimeoutError, match=r"list its tools within 0.5s"):
            await discovering.list_tools()
        assert time.monotonic() - started < 2
        await asyncio.wait_for(discovering.aclose(), timeout=2)


async def test_tool_discovery_is_bounded_when_listing_hangs() -> None:
    async with serve_slow(list_delay=5) as url:
        config = http_config(url, name="slow", timeouts=timeouts(discovery=0.5))
        async with MCPToolServer(config) as server:  # connecting works
            started = time.monotonic()
            with pytest.raises(DependencyTimeoutError, match=r"list its tools within 0.5s"):
                await server.list_tools()
            assert time.monotonic() - started < 1.5
            # The session survives; the call lists the tools again (the SDK validates the
            # result against the tool's output schema), which now answers at once.
            assert server.connected
            assert (await server.call_tool("sleep", {"seconds": 0})).content == "slept 0.0s"


async def test_reconnects_after_the_server_restarts() -> None:
    async with serve_mounted_demo() as running:
        port, url = running.port, running.url + "/mcp/demo/"
        server = MCPToolServer(http_config(url))
        await server.start()
        assert (await server.call_tool("calculate", {"expression": "1 + 1"})).content == "2"

    # Down: the call tries one fresh connection, then fails, quickly.
    started = time.monotonic()
    with pytest.raises(DependencyConnectionError) as caught:
        await server.call_tool("calculate", {"expression": "2 + 2"})
    assert time.monotonic() - started < 2
    assert caught.value.dependency == "mcp:demo"

    async with serve_mounted_demo(port=port):  # back on the same port
        assert (await server.call_tool("calculate", {"expression": "3 + 3"})).content == "6"
        assert server.connected
    await server.aclose()


async def test_a_server_restarted_between_calls_is_transparent() -> None:
    async with serve_mounted_demo() as running:
        port, url = running.port, running.url + "/mcp/demo/"
        server = MCPToolServer(http_config(url))
        assert (await server.call_tool("calculate", {"expression": "1"})).content == "1"
    async with serve_mounted_demo(port=port):
        assert (await server.call_tool("calculate", {"expression": "2"})).content == "2"
    await server.aclose()


async def test_standalone_demo_server(standalone_demo: StandaloneDemo) -> None:
    async with MCPToolServer(http_config(standalone_demo.url)) as server:
        assert {tool.name for tool in await server.list_tools()} == DEMO_TOOLS
        now = await server.call_tool("current_time", {"timezone": "Europe/Oslo"})
        assert now.structured is not None
        assert now.structured["timezone"] == "Europe/Oslo"

        standalone_demo.kill()
        with pytest.raises(DependencyConnectionError):
            await server.call_tool("calculate", {"expression": "1"})

        standalone_demo.start()
        assert (await server.call_tool("calculate", {"expression": "7 * 6"})).content == "42"


class RequireToken(BaseHTTPMiddleware):
    """401 unless the request carries ``Authorization: Bearer <expected["token"]>``; 503 (with
    ``Retry-After``) for ``Bearer busy``."""

    def __init__(self, app: ASGIApp, expected: dict[str, str]) -> None:
        super().__init__(app)
        self.expected = expected

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        authorization = request.headers.get("authorization")
        if authorization == "Bearer busy":
            return JSONResponse({"detail": "busy"}, status_code=503, headers={"retry-after": "7"})
        if authorization != f"Bearer {self.expected['token']}":
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        return await call_next(request)


def guarded_demo(expected: dict[str, str]) -> ASGIApp:
    return host_app(
        ("/mcp", demo_server_asgi()), middleware=[Middleware(RequireToken, expected=expected)]
    )


async def test_headers_come_from_files_and_http_statuses_are_classified(tmp_path: Path) -> None:
    good, wrong, busy = tmp_path / "good", tmp_path / "wrong", tmp_path / "busy"
    good.write_text("Bearer s3cret\n")  # as a mounted Secret key: a trailing newline
    wrong.write_text("Bearer guess")
    busy.write_text("Bearer busy")
    async with running_server(guarded_demo({"token": "s3cret"})) as running:
        url = running.url + "/mcp/"
        config = http_config(url, header_files={"Authorization": str(good)})
        async with MCPToolServer(config) as server:
            result = await server.call_tool("calculate", {"expression": "2 * 21"})
            assert result == ToolResult(content="42", structured={"result": 42})

        with pytest.raises(DependencyAuthError, match="HTTP 401"):
            await MCPToolServer(
                http_config(url, header_files={"Authorization": str(wrong)})
            ).start()
        with pytest.raises(OverloadedError, match="HTTP 503") as overloaded:
            await MCPToolServer(http_config(url, header_files={"Authorization": str(busy)})).start()
        assert overloaded.value.retryable
        missing = {"Authorization": str(tmp_path / "absent")}
        with pytest.raises(DependencyAuthError, match="cannot read the value of header"):
            await MCPToolServer(http_config(url, header_files=missing)).start()


async def test_a_rotated_secret_is_picked_up_after_a_401(tmp_path: Path) -> None:
    token, expected = tmp_path / "token", {"token": "old"}
    token.write_text("Bearer old")
    async with running_server(guarded_demo(expected)) as running:
        config = http_config(running.url + "/mcp/", header_files={"Authorization": str(token)})
        async with MCPToolServer(config) as server:
            assert (await server.call_tool("calculate", {"expression": "1"})).content == "1"
            expected["token"] = "new"  # the server rotates the secret...
            token.write_text("Bearer new")  # ... and the mounted Secret file follows
            # The call is refused with 401, reconnects reading the file again, and is resent.
            assert (await server.call_tool("calculate", {"expression": "2"})).content == "2"
            expected["token"] = "newer"  # rotated on the server only: a real auth failure
            with pytest.raises(DependencyAuthError, match="HTTP 401") as caught:
                await server.call_tool("calculate", {"expression": "3"})
            assert not caught.value.retryable


async def test_closing_while_connecting_leaves_no_connection_behind() -> None:
    async with serve_mounted_demo() as running:
        server = MCPToolServer(http_config(running.url + "/mcp/demo/"))
        starting = asyncio.create_task(server.start())
        await asyncio.sleep(0)  # the connect is under way
        await server.aclose()
        with pytest.raises(DependencyConnectionError, match="closed"):
            await starting
        assert not server.connected
