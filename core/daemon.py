"""The long-lived daemon behind ``python main.py run``.

Every resource is entered on one ``AsyncExitStack`` in start-up order and closed in
reverse; nothing connects at import time. ``run_daemon`` returns the process exit code.

Order: engine → schema check → leadership (standby waits here) → runtime → scheduler
(``_scheduler`` set) → recovery (re-arm owed retries) → outbox listener → sweep loop.
On stop: the sweep ends, the scheduler stops firing, in-flight runs get
``shutdown_timeout_seconds`` to finish, the rest are cancelled (their keys stay owed and
their leases are released), then everything closes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.db.migrate import schema_status
from core.db.session import create_engine
from core.engine.leadership import leadership
from core.engine.periodic import schedule_periodic
from core.engine.recovery import recover
from core.engine.sweeper import OutboxSweeper
from core.errors import GroupsyncError
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SyncScheduler
from core.observability import get_logger
from core.runtime import Runtime, lease_owner_id, open_runtime

log = get_logger("groupsync.daemon")

EXIT_LEADERSHIP_LOST = 3


class StartupRefused(GroupsyncError):
    """The daemon will not start; the message says what to do."""


class DaemonFace(Protocol):
    """What the daemon serves to operators (core.admin.face.AdminFace), passed in by the
    caller so this composition root does not import the faces above it. ``open`` runs
    before leadership (a standby serves health and reads), ``activate`` once we lead."""

    async def open(self, engine: AsyncEngine, owner: str, stack: AsyncExitStack) -> None: ...

    async def activate(
        self, runtime: Runtime, wake: Callable[[], None], stack: AsyncExitStack
    ) -> None: ...


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_daemon(
    settings: Settings, stop: asyncio.Event | None = None, *, face: DaemonFace | None = None
) -> int:
    stop = stop or asyncio.Event()
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        status = await schema_status(engine, settings.database_url)
        if not status.at_head:
            raise StartupRefused(status.problem())
        if face is not None:
            await face.open(engine, lease_owner_id("daemon"), stack)
        lost = await stack.enter_async_context(leadership(settings.database_url, stop))
        if stop.is_set():
            log.info("daemon_stopped_while_standing_by")
            return 0
        scheduler = SyncScheduler()
        runtime = await open_runtime(
            settings, stack, scheduler=scheduler, engine=engine, owner_kind="daemon"
        )
        await stack.enter_async_context(_installed(scheduler))
        stack.push_async_callback(_drain, runtime)  # runs before the scheduler is removed
        await recover(runtime, scheduler)
        schedule_periodic(scheduler, runtime)
        sweeper = OutboxSweeper(runtime)
        await sweeper.listen(stack)
        if face is not None:
            await face.activate(runtime, sweeper.wake.set, stack)
        log.info("daemon_started", settings=settings.public_summary(), owner=runtime.owner)
        sweep = asyncio.get_running_loop().create_task(sweeper.run(stop))
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
        await asyncio.wait([sweep, *waiters], return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        stop.set()
        await _finish(sweep)
        log.info("daemon_stopping", leadership_lost=lost.is_set())
    log.info("daemon_stopped")
    return EXIT_LEADERSHIP_LOST if lost.is_set() else 0


class _installed:
    """Start the scheduler and make it the process-wide ``_scheduler``; undo on exit."""

    def __init__(self, scheduler: SyncScheduler) -> None:
        self.scheduler = scheduler

    async def __aenter__(self) -> SyncScheduler:
        self.scheduler.start()
        scheduler_module._scheduler = self.scheduler
        return self.scheduler

    async def __aexit__(self, *_exc: object) -> None:
        if scheduler_module._scheduler is self.scheduler:
            scheduler_module._scheduler = None
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


async def _drain(runtime: Runtime) -> None:
    if runtime.scheduler is not None and runtime.scheduler.running:
        runtime.scheduler.pause()  # no new retries fire while we wait
    cancelled = await runtime.coordinator.drain(runtime.settings.shutdown_timeout_seconds)
    if cancelled:
        log.warning("runs_cancelled_at_shutdown", count=cancelled, keys_remain="owed")


async def _finish(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        log.exception("sweep_crashed")
