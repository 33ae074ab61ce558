"""A TCP proxy for fault injection (no toxiproxy here): put it between a client and a
server, then :meth:`~TcpProxy.cut` the connections (a dropped connection), or
:meth:`~TcpProxy.blackhole` traffic (a network partition: sockets stay open, bytes vanish
— only timeouts and heartbeats notice), and :meth:`~TcpProxy.restore` it.

    async with TcpProxy("127.0.0.1", server_port) as proxy:
        client connects to proxy.port ...
        proxy.blackhole(); await asyncio.sleep(2); proxy.restore()
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from agentfleet_runtime.testing.servers import free_port

Direction = Literal["both", "down", "up"]


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.drop_up = False  # client → server bytes vanish
        self.drop_down = False  # server → client bytes vanish
        self.refuse = False  # new connections are closed at once
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    def cut(self) -> None:
        """Close every proxied connection now (both sides see the connection drop)."""
        for client, upstream in list(self._links):
            for writer in (client, upstream):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._links.clear()

    def blackhole(self, direction: Direction = "both", *, refuse_new: bool = True) -> None:
        self.drop_up = direction in ("both", "up")
        self.drop_down = direction in ("both", "down")
        self.refuse = refuse_new

    def restore(self) -> None:
        self.drop_up = self.drop_down = self.refuse = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        link = (writer, up_writer)
        self._links.add(link)
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, up=True)),
            asyncio.create_task(self._pump(up_reader, writer, up=False)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self.drop_up if up else self.drop_down:
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
