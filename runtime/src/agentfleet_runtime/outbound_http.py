"""The HTTP client of every outbound HTTP dependency: model SDKs and streamable-HTTP MCP
servers. Both SDKs take an ``httpx2.AsyncClient``; this module builds one, on
`aiohttp <https://docs.aiohttp.org>`_ by default.

Why aiohttp underneath: httpx's own transport (httpcore on anyio) spends, per request, an
anyio cancel scope on every socket read and write and a ``select`` on every pooled
connection; aiohttp's C parser and asyncio-native connector do the same work in less.
Measured on this project's benchmarks: 0.3 ms less CPU per model call and 0.35 ms per MCP
tool call, about 10 % of a turn (docs/performance.md). The openai and anthropic SDKs ship
the same idea (``DefaultAioHttpClient``, from ``httpx-aiohttp``), but that adapter reports
a refused connection and a server that hangs up as ``ConnectTimeout``, which the resilience
layer would count as timeouts and the MCP client would not re-send; :func:`_translate`
maps aiohttp's errors onto httpx's the way httpx itself raises them.

``AGENTFLEET_POOLS__HTTP_TRANSPORT=httpx`` goes back to httpx's own transport (HTTP/2 is
only there; aiohttp speaks HTTP/1.1). So does an egress proxy in the environment
(``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``): httpx applies those, with ``NO_PROXY``, only
to its own transport, and a client that ignored them would bypass the proxy. With
aiohttp, ``max_keepalive_connections`` is not enforced (aiohttp keeps every idle
connection up to ``max_connections`` for ``keepalive_expiry``) and there is no write
timeout.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import httpx2

#: Which transport outbound clients use (``AGENTFLEET_POOLS__HTTP_TRANSPORT``).
HttpTransportKind = Literal["aiohttp", "httpx"]

log = logging.getLogger(__name__)


def environment_proxy() -> str | None:
    """The egress proxy the environment configures for outbound HTTP, if any."""
    proxies = urllib.request.getproxies()
    return next((proxies[k] for k in ("https", "http", "all") if proxies.get(k)), None)


@dataclass(frozen=True)
class HttpPool:
    """How an outbound client pools its connections (``AGENTFLEET_POOLS__*``)."""

    limits: httpx2.Limits
    transport: HttpTransportKind = "aiohttp"

    def client(self, *, timeout: httpx2.Timeout, **kwargs: Any) -> httpx2.AsyncClient:
        """A client with its own pool (``kwargs``: headers, event hooks, redirects...)."""
        if self.transport == "httpx" or environment_proxy() is not None:
            return httpx2.AsyncClient(limits=self.limits, timeout=timeout, **kwargs)
        transport = AiohttpTransport(limits=self.limits)
        return httpx2.AsyncClient(transport=transport, timeout=timeout, **kwargs)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        raise _translate(exc) from exc


def _translate(exc: aiohttp.ClientError) -> httpx2.TransportError:
    """The httpx exception httpx's own transport raises for the same failure."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(message)  # connecting, or waiting for the pool
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx2.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return httpx2.ProxyError(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(message)  # refused, unreachable, DNS, TLS handshake
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx2.RemoteProtocolError(message)  # hung up, or a body cut short
    if isinstance(exc, aiohttp.NonHttpUrlClientError | aiohttp.InvalidURL):
        return httpx2.UnsupportedProtocol(message)
    return httpx2.ReadError(message)  # a socket error on an open connection


class _ResponseStream(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translated():
            # Whatever has arrived, at once: server-sent events must not wait for a buffer.
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A response read to the end gives its connection back to the pool; one closed
        # early closes its connection.
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx transport that sends requests with one ``aiohttp.ClientSession``."""

    def __init__(self, *, limits: httpx2.Limits) -> None:
        self._limits = limits
        # Verified against the system's CAs, or SSL_CERT_FILE/SSL_CERT_DIR, as httpx does.
        self._ssl = httpx2.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the running event loop.
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry,
            ssl=self._ssl,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
            auto_decompress=False,  # httpx decodes the body
            # httpx sends every header it means to; aiohttp must not add a Content-Type.
            skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        headers = request.headers.multi_items()
        body: bytes | httpx2.AsyncByteStream | None
        try:
            body = request.content or None
        except httpx2.RequestNotRead:  # a streamed upload: aiohttp does the chunking
            body = request.stream  # type: ignore[assignment]
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        with _translated():
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body,
                allow_redirects=False,  # httpx follows redirects itself
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
