"""A TCP proxy in front of PostgreSQL that a test can take down and bring back.

Daemon subprocesses get the proxy's URL; the test keeps a direct connection. ``down()``
resets every proxied connection and closes the listening socket (new connections are
refused), which is what a server restart or a network failure looks like from the
client; ``up()`` listens again on the same port. It runs on its own thread, so a test
that blocks (waiting for a process) does not stall the traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

from sqlalchemy.engine import make_url


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.url = url
        self.target = (url.host or "127.0.0.1", url.port or 5432)
        self.port = _free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    @property
    def database_url(self) -> str:
        return str(self.url.set(port=self.port).render_as_string(hide_password=False))

    def start(self, listening: bool = True) -> DatabaseProxy:
        self._thread.start()
        if listening:
            self.up()
        return self

    def up(self) -> None:
        self._call(self._listen())

    def down(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            # An unclosed loop leaks its self-pipe socket pair: a ResourceWarning that
            # pytest pins on whichever later test the garbage collector happens to run in.
            self._loop.close()

    def _call(self, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()  # a reset, as when the server goes away
        self._links.clear()

    async def _shut(self) -> None:
        """Cut, then let connections the server had accepted but not yet handed to
        ``_handle`` reach it (each registers, sees the cut, and is reset), and end every
        handler: a socket left open here failed a later test with a ResourceWarning."""
        await self._cut()
        await asyncio.sleep(0.05)
        await self._cut()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._cut()  # a handler cancelled while it connected upstream left its client

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Held from the moment it is accepted: a cut while the upstream connection is
        # still being opened must reset it too (else its socket outlived the proxy, and
        # the ResourceWarning failed whichever test the garbage collector ran in).
        self._links.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._links.discard(writer)
            return
        if writer not in self._links:  # cut meanwhile: the client was already reset
            up_writer.transport.abort()
            return
        self._links.add(up_writer)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._links.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
