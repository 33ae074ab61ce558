"""The outbound HTTP client on both transports, over real sockets: the aiohttp transport
must behave as httpx's own does, above all in the exceptions it raises, because the
resilience layer and the MCP client decide on them (a refused connection is re-sent, a
timeout is not)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx2
import pytest

from agentfleet_runtime.outbound_http import HttpPool, HttpTransportKind

pytestmark = pytest.mark.asyncio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TRANSPORTS: list[HttpTransportKind] = ["aiohttp", "httpx"]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A raw TCP server on a free port running ``handler`` per connection; yields its URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    line, *fields = head.strip().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return line, headers, body


def response(status: int, body: bytes, **headers: str) -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


def client(transport: HttpTransportKind, **timeouts: float) -> httpx2.AsyncClient:
    limits = httpx2.Limits(max_connections=timeouts.pop("max_connections", 10))
    pool = HttpPool(limits, transport)
    return pool.client(timeout=httpx2.Timeout(5.0, **timeouts), follow_redirects=True)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_request_and_its_answer_go_through_unchanged(transport: HttpTransportKind) -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []
    peers: set[object] = set()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.add(writer.get_extra_info("peername"))
        while True:
            line, headers, body = await read_request(reader)
            seen.append((line, headers, body))
            if line.startswith("GET /old"):
                writer.write(response(307, b"", location="/new"))
            else:
                payload = gzip.compress(b'{"answer": 42}')
                writer.write(
                    response(200, payload, content_type="application/json", content_encoding="gzip")
                )
            await writer.drain()

    async with serving(handler) as url, client(transport) as http:
        answer = await http.post(f"{url}/v1/x", json={"q": "é"}, headers={"x-api-key": "k"})
        redirected = await http.get(f"{url}/old")

    assert answer.status_code == 200
    assert answer.json() == {"answer": 42}  # the body was un-gzipped by httpx
    assert answer.headers["content-type"] == "application/json"
    line, headers, body = seen[0]
    assert line == "POST /v1/x HTTP/1.1"
    assert body == '{"q":"é"}'.encode()
    assert headers["content-type"] == "application/json"
    assert headers["x-api-key"] == "k"
    assert headers["user-agent"].startswith("python-httpx")  # httpx's headers, not aiohttp's
    assert redirected.status_code == 200
    assert str(redirected.url).endswith("/new")
    assert len(peers) == 1  # every request on one kept-alive connection


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_streamed_upload_is_sent_once_chunked(transport: HttpTransportKind) -> None:
    bodies: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, headers, body = await read_request(reader)
        bodies.append(body)
        writer.write(response(200, headers.get("transfer-encoding", "-").encode()))
        await writer.drain()

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            yield part

    async with serving(handler) as url, client(transport) as http:
        answer = await http.post(url, content=parts())
    assert bodies == [b"one,two,three"]
    assert answer.text == "chunked"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_streamed_answer_arrives_as_it_is_sent(transport: HttpTransportKind) -> None:
    second = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        writer.write(b"transfer-encoding: chunked\r\n\r\n")
        writer.write(b"b\r\ndata: one\n\n\r\n")
        await writer.drain()
        await second.wait()  # the client must see "one" before "two" is sent
        writer.write(b"b\r\ndata: two\n\n\r\n0\r\n\r\n")
        await writer.drain()

    events: list[str] = []
    async with (
        serving(handler) as url,
        client(transport) as http,
        http.stream("GET", url) as answer,
    ):
        async for line in answer.aiter_lines():
            if line:
                events.append(line)
                second.set()
    assert events == ["data: one", "data: two"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_connection_is_a_connect_error(transport: HttpTransportKind) -> None:
    async with serving(lambda r, w: asyncio.sleep(0)) as url:
        pass  # closed: nothing listens on that port any more
    async with client(transport) as http:
        with pytest.raises(httpx2.ConnectError):
            await http.get(url)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_server_that_hangs_up_is_a_remote_protocol_error(
    transport: HttpTransportKind,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with serving(hang_up) as url, client(transport) as http:
        with pytest.raises(httpx2.RemoteProtocolError):
            await http.get(url)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_body_cut_short_is_a_remote_protocol_error(transport: HttpTransportKind) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..")
        await writer.drain()

    async with serving(cut) as url, client(transport) as http:
        with pytest.raises(httpx2.RemoteProtocolError):
            await http.get(url)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_silent_server_is_a_read_timeout(transport: HttpTransportKind) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with serving(silent) as url, client(transport, read=0.3) as http:
        with pytest.raises(httpx2.ReadTimeout):
            await http.get(url)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_waiting_for_a_full_pool_is_a_timeout(transport: HttpTransportKind) -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.write(response(200, b"ok"))
        await writer.drain()

    async with serving(slow) as url, client(transport, pool=0.3, max_connections=1) as http:
        first = asyncio.create_task(http.get(url))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx2.TimeoutException):
            await http.get(url)
        release.set()
        assert (await first).text == "ok"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_egress_proxy_in_the_environment_is_used(
    transport: HttpTransportKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY/NO_PROXY are honoured on either setting (with a proxy configured the
    client runs on httpx's transport, which applies them)."""
    lines: list[str] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _, _ = await read_request(reader)
        lines.append(line)
        writer.write(response(200, b"via proxy"))
        await writer.drain()

    async with serving(proxy) as proxy_url:
        for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("NO_PROXY", "direct.invalid")
        async with client(transport) as http:
            answer = await http.get("http://upstream.invalid/v1/models")
            with pytest.raises(httpx2.ConnectError):  # not proxied: no such host
                await http.get("http://direct.invalid/")
    assert answer.text == "via proxy"
    assert lines == ["GET http://upstream.invalid/v1/models HTTP/1.1"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_closed_early_does_not_leak_into_the_next_answer(
    transport: HttpTransportKind,
) -> None:
    """The unread rest of a stream the client walked away from must not be read as the
    next response on a reused connection."""
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        while True:
            await read_request(reader)
            served += 1
            if served == 1:
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                writer.write(b"5\r\nfirst\r\n5\r\nextra\r\n")  # ...and never the end
            else:
                writer.write(response(200, b"second answer"))
            await writer.drain()

    async with serving(handler) as url, client(transport) as http:
        async with http.stream("GET", url) as first:
            async for chunk in first.aiter_bytes():
                assert chunk.startswith(b"first")
                break
        second = await http.get(url)
    assert second.text == "second answer"
