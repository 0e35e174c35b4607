"""Serves one aiohttp app on a fixed port, and can stop listening (an outage) and resume.

During an outage the listening socket is closed, so connects are refused, and
open keep-alive connections are dropped. Resuming re-binds the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from aiohttp import web


class Listener:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._server: asyncio.base_events.Server | None = None
        self._starting: asyncio.Task[asyncio.base_events.Server] | None = None
        self._sock: socket.socket | None = None
        self._generation = 0
        self.up = False

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self.resume()
        await self.wait_ready()

    async def wait_ready(self) -> None:
        if self._starting is not None and not self._starting.done():
            # A start overtaken by an outage fails on its closed socket; that is fine.
            await asyncio.wait([self._starting])

    def resume(self) -> None:
        """Listen again (synchronous: the kernel queues connects until serving starts)."""
        if self.up:
            return
        assert self._runner is not None
        assert self._runner.server is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self.up = True
        generation = self._generation
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.create_server(self._runner.server, sock=sock))
        self._starting = task

        def started(done: asyncio.Task[asyncio.base_events.Server]) -> None:
            if done.cancelled() or done.exception() is not None:
                return  # exception() marks it retrieved
            server = done.result()
            if generation != self._generation:
                with contextlib.suppress(ValueError, OSError):  # its socket is already closed
                    server.close()
            else:
                self._server = server

        task.add_done_callback(started)

    def suspend(self) -> None:
        """Stop listening and drop open connections (synchronous)."""
        if not self.up:
            return
        self.up = False
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        elif self._sock is not None:
            self._sock.close()
        self._sock = None
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                handler.force_close()

    async def stop(self) -> None:
        await self.wait_ready()
        self.suspend()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
