"""``MCPToolServer``: the :class:`~agentfleet_runtime.tools.base.ToolServer` adapter for MCP
servers, over stdio (a subprocess) or streamable HTTP, with the official ``mcp`` SDK.

How it works:

* The SDK's client contexts are anyio task groups, which must be entered and exited by the
  same task. Each connection is therefore owned by a dedicated background task
  (:class:`_Connection`) that enters the transport and :class:`mcp.Client`, reports "ready",
  and waits until it is asked to stop or the transport ends. Calls from any task go through
  the connected session concurrently (requests are correlated by id).
* Everything is bounded: connecting by ``timeouts.connect_seconds``, listing tools by
  ``timeouts.discovery_seconds``, a call by ``timeouts.call_seconds``, closing by
  :data:`CLOSE_TIMEOUT_SECONDS`. A dead or hanging server gives a translated error, never a
  hang.
* When the connection is lost (server killed, HTTP server gone), the next call opens a fresh
  connection once before failing. A call that was *in flight* when the connection dropped is
  not re-sent (the tool may have run); it fails with :class:`DependencyConnectionError`, and
  the call after it reconnects. A request that provably never reached the server (connection
  refused, stateful session unknown to a restarted server) is re-sent once on a fresh
  connection. Retry policy beyond that belongs to the resilience layer.
* SDK and transport exceptions are translated here into :mod:`agentfleet_runtime.errors`
  (``dependency="mcp:<name>"``); HTTP statuses go through :func:`status_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx2
from mcp import Client
from mcp.client._transport import Transport, TransportStreams
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
from mcp.shared._stream_protocols import ReadStream
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    REQUEST_TIMEOUT,
    UNSUPPORTED_PROTOCOL_VERSION,
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    Implementation,
    ResourceLink,
    TextContent,
    TextResourceContents,
)
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1.mcpserver import MCPTransport
from agentfleet_runtime import __version__
from agentfleet_runtime.errors import (
    DependencyAuthError,
    DependencyConnectionError,
    DependencyError,
    DependencyTimeoutError,
    IncompatibleDependencyError,
    UpstreamBadRequestError,
    UpstreamServerError,
    parse_retry_after,
    status_error,
)
from agentfleet_runtime.outbound_http import HttpPool
from agentfleet_runtime.providers.base import ToolSpec
from agentfleet_runtime.tools.base import ToolResult

__all__ = ["CLOSE_TIMEOUT_SECONDS", "MCPToolServer", "ServerIdentity", "read_header_files"]

log = logging.getLogger(__name__)

#: How long closing a connection may take before its owner task is cancelled, and again
#: before it is abandoned (a stdio server gets its stdin closed, then SIGTERM, then SIGKILL).
CLOSE_TIMEOUT_SECONDS: Final = 3.0
#: How long a failed call waits for the connection's owner task to report why it ended.
_CAUSE_GRACE_SECONDS: Final = 0.5
#: Page cap when listing tools, so a paginator that never ends cannot loop forever.
_MAX_TOOL_PAGES: Final = 100
#: The messages the SDK's HTTP transport synthesises when a POST answers with an HTTP error
#: status and no JSON-RPC body: the status is then taken from the response hook.
_SYNTHESISED_HTTP_ERRORS: Final = frozenset(
    {"Server returned an error response", "Not Found", "Session terminated"}
)
_CLIENT_INFO: Final = Implementation(name="agentfleet-runtime", version=__version__)
#: What the SDK raises when the server answers the handshake with a version it does not speak.
_UNSUPPORTED_VERSION_MESSAGES: Final = (
    "Unsupported protocol version",
    "No mutually supported modern protocol version",
)


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """What a server said about itself when a connection was opened: the MCP protocol
    version negotiated and its ``serverInfo`` (optional from the 2026 protocol on)."""

    protocol_version: str
    server_name: str | None = None
    server_version: str | None = None


def read_header_files(header_files: dict[str, str], *, dependency: str) -> dict[str, str]:
    """HTTP headers from files (mounted Secret keys), read at connect time so a rotated
    secret is picked up by the next connection. Trailing newlines are stripped."""
    headers: dict[str, str] = {}
    for header, path in header_files.items():
        try:
            headers[header] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DependencyAuthError(
                f"cannot read the value of header {header!r} from {path}: {exc.strerror or exc}",
                dependency=dependency,
            ) from exc
    return headers


# --------------------------------------------------------------------------- connection


class _WatchedReadStream:
    """A transport's read stream that reports its end (the server went away) to a callback,
    so an idle dead connection is noticed before the next call is sent on it."""

    __slots__ = ("_inner", "_on_end")

    def __init__(self, inner: ReadStream[SessionMessage | Exception], on_end: Callable[[], None]):
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        # The dispatcher reads the sender's contextvars snapshot duck-typed, if there is one.
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._inner.receive()
        except BaseException:
            self._on_end()
            raise

    async def aclose(self) -> None:
        self._on_end()
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self._inner.__anext__()
        except BaseException:
            self._on_end()
            raise

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None


@contextlib.asynccontextmanager
async def _watched(
    transport: Transport, on_end: Callable[[], None]
) -> AsyncIterator[TransportStreams]:
    async with transport as (read_stream, write_stream):
        yield _WatchedReadStream(read_stream, on_end), write_stream


def _root_cause(exc: BaseException | None) -> BaseException | None:
    """The first meaningful leaf of an exception group (anyio task groups wrap errors)."""
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = leaves[0] if leaves else exc.exceptions[0]
    return exc


class _Connection:
    """One MCP session, owned by a dedicated task from connect to close."""

    def __init__(
        self,
        config: ResolvedMCPServer,
        dependency: str,
        http_pool: HttpPool | None = None,
    ) -> None:
        self.config = config
        self.dependency = dependency
        self.http_pool = http_pool
        self.client: Client | None = None
        self.error: BaseException | None = None
        #: The last HTTP error status seen (and its Retry-After), for error translation.
        self.http_error: tuple[int, float | None] | None = None
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._ended = False
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and not self._ended and not self._wake.is_set()

    def _on_end(self) -> None:
        self._ended = True
        self._wake.set()

    async def _on_response(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            self.http_error = (response.status_code, retry_after)
        else:
            self.http_error = None

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Transport:
        config = self.config
        if config.transport == MCPTransport.STDIO:
            if not config.command:
                raise DependencyConnectionError(
                    "stdio MCP server has no command", dependency=self.dependency
                )
            params = StdioServerParameters(
                command=config.command, args=list(config.args), env=dict(config.env) or None
            )
            return stdio_client(params)
        if not config.url:
            raise DependencyConnectionError(
                "streamable-http MCP server has no url", dependency=self.dependency
            )
        headers = read_header_files(config.header_files, dependency=self.dependency)
        pool = self.http_pool or HttpPool(httpx2.Limits())
        http = pool.client(
            headers=headers,
            timeout=httpx2.Timeout(
                MCP_DEFAULT_TIMEOUT,
                connect=config.timeouts.connect_seconds,
                read=MCP_DEFAULT_SSE_READ_TIMEOUT,
            ),
            event_hooks={"response": [self._on_response]},
        )
        await stack.enter_async_context(http)
        return streamable_http_client(config.url, http_client=http)

    async def _run(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = await self._transport(stack)
                client = Client(
                    _watched(transport, self._on_end),
                    mode="auto",
                    cache=None,
                    client_info=_CLIENT_INFO,
                )
                await stack.enter_async_context(client)
                self.client = client
                self._ready.set()
                await self._wake.wait()
        except (Exception, BaseExceptionGroup) as exc:  # the end, for whoever waits on it
            self.error = exc
        finally:
            self.client = None
            self._ended = True
            self._ready.set()

    @property
    def protocol_version(self) -> str | None:
        return self.client.protocol_version if self.client is not None else None

    def identity(self) -> ServerIdentity | None:
        client = self.client
        if client is None:
            return None
        info = client.server_info
        return ServerIdentity(
            protocol_version=client.protocol_version,
            server_name=info.name if info is not None else None,
            server_version=info.version if info is not None else None,
        )

    async def open(self) -> None:
        """Connect and initialise, bounded by the connect timeout."""
        timeout = self.config.timeouts.connect_seconds
        self._task = asyncio.create_task(self._run(), name=f"{self.dependency} connection")
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            await self.close()
            raise DependencyTimeoutError(
                f"MCP server {self.config.name!r} did not complete the handshake within {timeout}s",
                dependency=self.dependency,
            ) from None
        except BaseException:
            await self.close()
            raise
        if self.client is None:
            raise self.translate(_root_cause(self.error), during="connect")

    async def cause(self) -> BaseException | None:
        """Why the connection ended, waiting briefly for its owner task to say."""
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=_CAUSE_GRACE_SECONDS)
        return _root_cause(self.error)

    async def close(self) -> None:
        """Stop the owner task: gracefully, then by cancellation, then abandon it (bounded)."""
        task = self._task
        if task is None or task.done():
            return
        if self._ready.is_set():  # connected (or ending): let it leave its contexts in order
            self._wake.set()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_SECONDS)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_SECONDS)
        if not task.done():
            log.warning(
                "MCP server %s: connection did not close within %.0fs; abandoning it",
                self.config.name,
                2 * CLOSE_TIMEOUT_SECONDS,
                extra={"mcp_server": self.config.name},
            )

    def translate(self, exc: BaseException | None, *, during: str) -> DependencyError:
        """Translate a transport or SDK exception into the runtime's hierarchy."""
        name, dependency = self.config.name, self.dependency
        prefix = f"MCP server {name!r} ({during})"
        if isinstance(exc, DependencyError):
            return exc
        if (
            isinstance(exc, RuntimeError) and str(exc).startswith(_UNSUPPORTED_VERSION_MESSAGES)
        ) or (isinstance(exc, MCPError) and exc.code == UNSUPPORTED_PROTOCOL_VERSION):
            message = exc.message if isinstance(exc, MCPError) else str(exc)
            return IncompatibleDependencyError(
                f"{prefix}: the server speaks no MCP protocol version this client supports "
                f"({message}; supported: {', '.join(KNOWN_PROTOCOL_VERSIONS)})",
                dependency=dependency,
            )
        if isinstance(exc, MCPError):
            if exc.code == REQUEST_TIMEOUT:
                return DependencyTimeoutError(f"{prefix}: {exc.message}", dependency=dependency)
            if exc.message in _SYNTHESISED_HTTP_ERRORS and self.http_error is not None:
                status, retry_after = self.http_error
                return status_error(
                    status,
                    f"{prefix}: HTTP {status}",
                    dependency=dependency,
                    retry_after=retry_after,
                )
            if exc.code == CONNECTION_CLOSED:
                return DependencyConnectionError(
                    f"{prefix}: the connection closed", dependency=dependency
                )
            if exc.code == INTERNAL_ERROR:
                return UpstreamServerError(f"{prefix}: {exc.message}", dependency=dependency)
            return UpstreamBadRequestError(
                f"{prefix}: error {exc.code}: {exc.message}", dependency=dependency
            )
        if isinstance(exc, httpx2.TimeoutException):
            return DependencyTimeoutError(f"{prefix}: {type(exc).__name__}", dependency=dependency)
        if isinstance(exc, httpx2.HTTPStatusError):
            status = exc.response.status_code
            return status_error(status, f"{prefix}: HTTP {status}", dependency=dependency)
        if isinstance(exc, httpx2.TransportError | OSError):
            detail = str(exc) or type(exc).__name__
            return DependencyConnectionError(f"{prefix}: {detail}", dependency=dependency)
        if exc is None:
            return DependencyConnectionError(
                f"{prefix}: the connection ended", dependency=dependency
            )
        return DependencyConnectionError(
            f"{prefix}: {type(exc).__name__}: {exc}", dependency=dependency
        )


class _ConnectionLostError(Exception):
    """A request failed because its connection ended; ``resend`` if it never reached the
    server."""

    def __init__(self, error: DependencyError, *, resend: bool) -> None:
        super().__init__(error.detail)
        self.error = error
        self.resend = resend


# --------------------------------------------------------------------------- results


def _describe(block: ContentBlock) -> str:
    match block:
        case TextContent(text=text):
            return text
        case ImageContent(mime_type=mime):
            return f"[image: {mime}]"
        case AudioContent(mime_type=mime):
            return f"[audio: {mime}]"
        case EmbeddedResource(resource=TextResourceContents(text=text)):
            return text
        case EmbeddedResource(resource=BlobResourceContents(uri=uri, mime_type=mime)):
            return f"[resource {uri}: {mime or 'binary'}]"
        case ResourceLink(uri=uri, name=name):
            return f"[resource link {name}: {uri}]"
    return f"[{getattr(block, 'type', 'content')}]"


def to_tool_result(result: CallToolResult) -> ToolResult:
    """An MCP tool result as the runtime's :class:`ToolResult`: text blocks joined by
    newlines (other blocks described in brackets), structured content kept as is."""
    content = "\n".join(_describe(block) for block in result.content)
    structured = result.structured_content
    if not content and structured is not None:
        content = json.dumps(structured, ensure_ascii=False)
    return ToolResult(content=content, is_error=bool(result.is_error), structured=structured)


# --------------------------------------------------------------------------- the adapter


class MCPToolServer:
    """A :class:`~agentfleet_runtime.tools.base.ToolServer` on one MCP server."""

    def __init__(self, config: ResolvedMCPServer, *, http_pool: HttpPool | None = None) -> None:
        """``http_pool``: the connection pool of a streamable-HTTP server's client
        (``AGENTFLEET_POOLS__MCP_HTTP__*``; ``None``: httpx's defaults)."""
        self.name = config.name
        self.config = config
        self.http_pool = http_pool
        self.dependency = f"mcp:{config.name}"
        self._allowed = None if config.allowed_tools is None else frozenset(config.allowed_tools)
        self._connection: _Connection | None = None
        self._lock = asyncio.Lock()
        self._tools: list[ToolSpec] | None = None
        self._closed = False
        #: What the server said about itself on the last connection (kept after it ends).
        self.identity: ServerIdentity | None = None
        #: Tools the server annotates read-only or idempotent: safe to call again after a
        #: timeout or a dropped connection (the resilience layer retries only these).
        self.idempotent_tools: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        target = self.config.url or " ".join([self.config.command or "", *self.config.args])
        return f"MCPToolServer({self.name!r}, {self.config.transport.value}, {target.strip()!r})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called (a closed client does not reconnect)."""
        return self._closed

    @property
    def connected(self) -> bool:
        """Whether a live session is open right now."""
        return self._connection is not None and self._connection.alive

    @property
    def protocol_version(self) -> str | None:
        """The MCP protocol version the live session negotiated (``None``: not connected)."""
        connection = self._connection
        return connection.protocol_version if connection is not None else None

    # -- connection -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (bounded by ``timeouts.connect_seconds``); a no-op when connected."""
        await self._connect()

    async def _connect(
        self, *, replacing: _Connection | None = None, reason: str = "connection lost"
    ) -> _Connection:
        """The live connection, opening one if there is none (or to replace ``replacing``).
        Concurrent callers share one connection attempt."""
        current = self._connection
        if current is not None and current.alive and current is not replacing:
            return current
        async with self._lock:
            if self._closed:
                raise DependencyConnectionError(
                    f"MCP server {self.name!r}: the client is closed", dependency=self.dependency
                )
            current = self._connection
            if current is not None and current.alive and current is not replacing:
                return current
            if current is not None:
                self._connection = None
                await current.close()
                log.warning(
                    "MCP server %s: reconnecting (%s)",
                    self.name,
                    reason,
                    extra={"mcp_server": self.name},
                )
            started = time.perf_counter()
            connection = _Connection(self.config, self.dependency, self.http_pool)
            try:
                await connection.open()
            except DependencyError as exc:
                log.warning(
                    "MCP server %s: connect failed: %s",
                    self.name,
                    exc.detail,
                    extra={"mcp_server": self.name, "error": type(exc).__name__},
                )
                raise
            if self.closed:  # closed while we were connecting
                await connection.close()
                raise DependencyConnectionError(
                    f"MCP server {self.name!r}: the client is closed", dependency=self.dependency
                )
            self._connection = connection
            self.identity = connection.identity()
            log.info(
                "MCP server %s: connected over %s (protocol %s) in %.2fs",
                self.name,
                self.config.transport.value,
                connection.protocol_version,
                time.perf_counter() - started,
                extra={
                    "mcp_server": self.name,
                    "reconnect": current is not None,
                    "protocol_version": connection.protocol_version,
                    "server_version": self.identity.server_version if self.identity else None,
                },
            )
            return connection

    async def _lost(
        self, connection: _Connection, exc: MCPError, *, during: str
    ) -> _ConnectionLostError:
        """Classify a request that failed because its connection ended."""
        if exc.message == "Session terminated":
            # A restarted stateful (pre-2026 protocol) server no longer knows our session:
            # it ran nothing, and the session is useless from now on.
            connection.error = connection.error or exc
            await connection.close()
            unknown = DependencyConnectionError(
                f"MCP server {self.name!r} ({during}): the server no longer knows the session",
                dependency=self.dependency,
            )
            return _ConnectionLostError(unknown, resend=True)
        cause = await connection.cause()
        # Connection refused: the request never left (an HTTP server that went away).
        refused = isinstance(cause, httpx2.ConnectError)
        error = connection.translate(cause if cause is not None else exc, during=during)
        return _ConnectionLostError(error, resend=refused)

    @staticmethod
    def _refused(connection: _Connection, exc: MCPError, *, during: str) -> Exception:
        """The error for a request the server refused. A refusal of our credentials (401,
        403) asks for a fresh connection: it reads the header files again (a rotated
        Secret), and the refused request never ran, so it is safe to send it once more."""
        error = connection.translate(exc, during=during)
        if isinstance(error, DependencyAuthError):
            return _ConnectionLostError(error, resend=True)
        return error

    @staticmethod
    def _is_connection_loss(exc: MCPError) -> bool:
        return exc.code == CONNECTION_CLOSED or (
            exc.code == INVALID_REQUEST and exc.message == "Session terminated"
        )

    async def aclose(self) -> None:
        """Close the connection (idempotent, bounded by twice :data:`CLOSE_TIMEOUT_SECONDS`)."""
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
            log.info("MCP server %s: closed", self.name, extra={"mcp_server": self.name})

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- tools ----------------------------------------------------------------------------

    async def list_tools(self, *, refresh: bool = False) -> list[ToolSpec]:
        """The server's tools allowed by ``allowed_tools``; cached after the first listing
        (``refresh=True`` lists again). Bounded by ``timeouts.discovery_seconds`` overall."""
        if self._tools is not None and not refresh:
            return list(self._tools)
        timeout = self.config.timeouts.discovery_seconds
        try:
            async with asyncio.timeout(timeout):
                connection = await self._connect()
                try:
                    tools = await self._list(connection)
                except _ConnectionLostError as lost:  # safe to repeat: once, on a new session
                    reason = lost.error.detail
                    connection = await self._connect(replacing=connection, reason=reason)
                    tools = await self._list(connection)
        except TimeoutError:
            log.warning(
                "MCP server %s: tool discovery timed out after %ss",
                self.name,
                timeout,
                extra={"mcp_server": self.name},
            )
            raise DependencyTimeoutError(
                f"MCP server {self.name!r} did not list its tools within {timeout}s",
                dependency=self.dependency,
            ) from None
        except _ConnectionLostError as lost:
            raise lost.error from lost
        self._tools = tools
        return list(tools)

    async def _list(self, connection: _Connection) -> list[ToolSpec]:
        client = connection.client
        if client is None:
            raise _ConnectionLostError(connection.translate(None, during="list tools"), resend=True)
        specs: list[ToolSpec] = []
        idempotent: set[str] = set()
        cursor: str | None = None
        try:
            for _ in range(_MAX_TOOL_PAGES):
                page = await client.list_tools(cursor=cursor)
                idempotent.update(
                    tool.name
                    for tool in page.tools
                    if tool.annotations is not None
                    and (tool.annotations.read_only_hint or tool.annotations.idempotent_hint)
                )
                specs.extend(
                    ToolSpec(
                        name=tool.name,
                        description=tool.description or tool.title or "",
                        input_schema=dict(tool.input_schema),
                    )
                    for tool in page.tools
                )
                cursor = page.next_cursor
                if cursor is None:
                    break
        except MCPError as exc:
            if self._is_connection_loss(exc):
                raise await self._lost(connection, exc, during="list tools") from exc
            raise self._refused(connection, exc, during="list tools") from exc
        except ValidationError as exc:
            raise DependencyError(
                f"MCP server {self.name!r} sent an invalid tool listing: {exc}",
                dependency=self.dependency,
            ) from exc
        self.idempotent_tools = frozenset(idempotent)
        if self._allowed is None:
            return specs
        missing = self._allowed - {spec.name for spec in specs}
        if missing:
            log.warning(
                "MCP server %s does not offer allowed tools %s",
                self.name,
                ", ".join(sorted(missing)),
                extra={"mcp_server": self.name},
            )
        return [spec for spec in specs if spec.name in self._allowed]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, call_timeout: float | None = None
    ) -> ToolResult:
        """Run a tool, bounded by ``call_timeout`` (default ``timeouts.call_seconds``; the
        resilience layer lengthens it after a timeout) plus a reconnect, bounded by
        ``timeouts.connect_seconds``, when the connection was lost."""
        if self._allowed is not None and name not in self._allowed:
            return ToolResult(
                content=f"Tool {name!r} is not allowed on MCP server {self.name!r}.",
                is_error=True,
            )
        connection = await self._connect()
        try:
            return await self._call(connection, name, arguments, call_timeout)
        except _ConnectionLostError as lost:
            if not lost.resend:
                log.warning(
                    "MCP server %s: connection lost during call to %s: %s",
                    self.name,
                    name,
                    lost.error.detail,
                    extra={"mcp_server": self.name, "tool": name},
                )
                raise lost.error from lost
            reason = lost.error.detail
        connection = await self._connect(replacing=connection, reason=reason)
        try:
            return await self._call(connection, name, arguments, call_timeout)
        except _ConnectionLostError as again:
            raise again.error from again

    async def _call(
        self,
        connection: _Connection,
        name: str,
        arguments: dict[str, Any],
        call_timeout: float | None = None,
    ) -> ToolResult:
        client = connection.client
        if client is None:  # ended between the check and now: nothing was sent
            raise _ConnectionLostError(
                connection.translate(None, during=f"call {name}"), resend=True
            )
        timeout = call_timeout or self.config.timeouts.call_seconds
        during = f"call {name}"
        try:
            async with asyncio.timeout(timeout):
                result = await client.call_tool(name, arguments)
        except TimeoutError:
            log.warning(
                "MCP server %s: tool %s timed out after %ss",
                self.name,
                name,
                timeout,
                extra={"mcp_server": self.name, "tool": name},
            )
            raise DependencyTimeoutError(
                f"tool {name!r} on MCP server {self.name!r} did not answer within {timeout}s",
                dependency=self.dependency,
            ) from None
        except MCPError as exc:
            if self._is_connection_loss(exc):
                raise await self._lost(connection, exc, during=during) from exc
            if exc.code in (INVALID_PARAMS, METHOD_NOT_FOUND) and exc.message not in (
                _SYNTHESISED_HTTP_ERRORS
            ):
                # The server refused this call (unknown tool, bad arguments): the model's
                # mistake to read and correct, like an is_error result.
                return ToolResult(
                    content=f"Error calling tool {name!r}: {exc.message}", is_error=True
                )
            raise self._refused(connection, exc, during=during) from exc
        except (ValidationError, RuntimeError) as exc:
            # A result that breaks the protocol or the tool's own output schema: retrying
            # the same call will not help.
            raise DependencyError(
                f"MCP server {self.name!r} returned an invalid result for {name!r}: {exc}",
                dependency=self.dependency,
            ) from exc
        return to_tool_result(result)
