"""The admin face of a daemon: API server and heartbeat from start-up (a standby answers
health and reads too), then, once the daemon leads, live client state, the sweep's wake-up
and the bulk worker. ``core.daemon`` calls it through its ``DaemonFace`` protocol, so the
composition root does not import the faces above it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.admin.api.app import create_app
from core.admin.api.server import AdminServer, refuse_public_without_token
from core.admin.bulk import BulkWorker
from core.admin.presence import Presence
from core.admin.service import AdminService, LiveHooks
from core.clock import SystemClock
from core.config import Settings
from core.db.session import create_session_factory
from core.db.transactions import transactions_of

if TYPE_CHECKING:
    from core.engine.loops.sweeper import SweepWake
    from core.runtime import Runtime


class AdminFace:
    def __init__(self, settings: Settings) -> None:
        refuse_public_without_token(settings.admin_host, settings.admin_token is not None)
        self.settings = settings
        self.service: AdminService | None = None
        self.server: AdminServer | None = None
        self.presence: Presence | None = None

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    async def open(self, engine: AsyncEngine, owner: str, stack: AsyncExitStack) -> None:
        sessions = create_session_factory(engine)
        clock = SystemClock()
        self.presence = Presence(sessions, clock, owner, transactions_of(engine))
        self.service = AdminService(sessions, self.settings, clock,
                                    LiveHooks(presence=self.presence))
        app = create_app(self.service, self.settings, engine=engine)
        self.server = AdminServer(app, self.settings.admin_host, self.settings.admin_port)
        await self.server.start(stack)
        # Unwound last-in first-out: the heartbeat loop stops first, then the row goes, so
        # no beat in flight writes it back after ``leave`` (a stopped daemon left a row that
        # read as a standby).
        stack.push_async_callback(self.presence.leave)
        await _background(stack, self.presence.run)

    async def activate(self, runtime: Runtime, wake: SweepWake, stack: AsyncExitStack) -> None:
        assert self.service is not None
        assert self.presence is not None
        worker = BulkWorker(runtime)
        wake.followers.append(worker.wake)  # a job another process queued wakes it too

        def wake_all() -> None:
            wake.set()

        board = runtime.client_board
        self.presence.board = lambda: board
        self.service.live.board = lambda: board
        self.service.live.pauses = runtime.pauses
        self.service.live.wake = wake_all
        self.service.live.runtime = lambda: runtime
        live = self.service.live
        stack.callback(lambda: setattr(live, "runtime", lambda: None))  # the term ended
        self.presence.become_active()
        stack.callback(self.presence.become_standby)  # the term ends: lost, or stopping
        await _background(stack, worker.run)


async def _background(
    stack: AsyncExitStack, loop: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
) -> None:
    """Run ``loop(stop)`` until the stack unwinds."""
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(loop(stop))

    async def finish() -> None:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=5)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    stack.push_async_callback(finish)
