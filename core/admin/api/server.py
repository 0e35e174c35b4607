"""uvicorn serving the admin API inside the caller's event loop (no thread, no process).

``AdminServer.start`` binds (refusing a non-loopback host without ADMIN_TOKEN), starts
serving and returns once the socket listens; ``port`` is the bound port (ADMIN_PORT=0
picks a free one). Stopped through the caller's exit stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from contextlib import AsyncExitStack

import uvicorn
from fastapi import FastAPI

from core.config import is_loopback
from core.errors import ConfigError
from core.observability import get_logger

log = get_logger("groupsync.admin.api")

TICK_SECONDS = 1.0


def refuse_public_without_token(host: str, token_set: bool) -> None:
    if not is_loopback(host) and not token_set:
        raise ConfigError(
            "ADMIN_TOKEN",
            f"not set, but ADMIN_HOST={host} is not a loopback address: the admin API would "
            "be open to the network; set ADMIN_TOKEN, or bind ADMIN_HOST=127.0.0.1",
        )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's own signal capture would take SIGTERM from the daemon: leave signals be.

    Its main loop woke ten times a second to see whether it should exit (a tenth of an
    idle daemon's CPU, issue 26): here it ticks once a second, when the Date header
    changes anyway, and ``exit`` ends it at once."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def exit(self) -> None:
        self.should_exit = True
        self._exit.set()

    async def main_loop(self) -> None:
        counter = 0  # on_tick refreshes the Date header when the counter is a multiple of 10
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), timeout=TICK_SECONDS)


class AdminServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host = host
        self.port = port
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                lifespan="off", server_header=False)
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self, stack: AsyncExitStack) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError("ADMIN_PORT", f"cannot bind {self.host}:{self.port}: {exc}") from None
        self.port = sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        stack.push_async_callback(self.stop, sock)
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what made serving fail
                raise ConfigError("ADMIN_PORT", f"admin API on {self.url} stopped at once")
            await asyncio.sleep(0.01)
        log.info("admin_api_listening", url=self.url)

    async def stop(self, sock: socket.socket) -> None:
        self._server.exit()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception:
                log.exception("admin_api_stop_failed")
        sock.close()
