"""The long-lived daemon behind ``python main.py run``.

Every resource is entered on one ``AsyncExitStack`` in start-up order and closed in
reverse; nothing connects at import time. ``run_daemon`` returns the process exit code.

Order: engine → schema check (waits while the database is down) → leadership (standby
waits here) → one term as leader: runtime → scheduler (``_scheduler`` set) → recovery
(re-arm owed retries) → reminder delivery (timers armed from the rows, rows left
``sending`` by a crash settled) → outbox listener → sweep loop. On stop: the sweep ends,
the scheduler stops firing, in-flight runs get ``shutdown_timeout_seconds`` to finish, the
rest are cancelled (their keys stay owed and their leases are released), then everything
closes. On losing the leadership the term ends the same way and the daemon contends
again as a standby; a database outage of any length is ridden out (one log line pair).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings, redact_url
from core.db.migrate import SchemaStatus, schema_status
from core.db.session import create_engine
from core.engine.leadership import leadership
from core.engine.outage import DatabaseOutage, is_database_unavailable, reconnect_delay
from core.engine.periodic import schedule_periodic
from core.engine.recovery import recover
from core.engine.reminders import delivery_for
from core.engine.sweeper import OutboxSweeper
from core.errors import GroupsyncError
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SyncScheduler
from core.observability import get_logger
from core.runtime import Runtime, lease_owner_id, open_runtime

log = get_logger("groupsync.daemon")

WAITING_LOG_SECONDS = 60.0  # "waiting for the database", once a minute


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
    outage = DatabaseOutage()  # one per process: one line pair per outage, whoever sees it
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        status = await _schema_once_reachable(engine, settings, outage, stop)
        if status is None:
            log.info("daemon_stopped_while_waiting_for_database")
            return 0
        if not status.at_head:
            raise StartupRefused(status.problem())
        if face is not None:
            await face.open(engine, lease_owner_id("daemon"), stack)
        failures = 0
        while not stop.is_set():
            try:
                async with leadership(
                    settings.database_url, stop, outage, settings.time_scale
                ) as lost:
                    if stop.is_set():
                        log.info("daemon_stopped_while_standing_by")
                        break
                    failures = 0
                    await _lead(settings, engine, stop, lost, outage, face)
            except Exception as exc:
                # The database went away while we took office or left it: contend again.
                if not is_database_unavailable(exc):
                    raise
                outage.failed(exc, where="daemon")
                await _pause(stop, reconnect_delay(failures, settings.time_scale))
                failures += 1
    log.info("daemon_stopped")
    return 0


async def _lead(
    settings: Settings,
    engine: AsyncEngine,
    stop: asyncio.Event,
    lost: asyncio.Event,
    outage: DatabaseOutage,
    face: DaemonFace | None,
) -> None:
    """One term as the active daemon, until ``stop`` or the loss of the leadership. On
    loss nothing new starts; in-flight runs get ``shutdown_timeout_seconds`` to finish
    under their fences (their leases keep the next leader off their keys), the rest are
    abandoned; then the caller contends again as a standby."""
    async with AsyncExitStack() as stack:
        scheduler = SyncScheduler()
        runtime = await open_runtime(
            settings, stack, scheduler=scheduler, engine=engine, owner_kind="daemon",
            outage=outage,
        )
        await stack.enter_async_context(_installed(scheduler))
        stack.push_async_callback(_drain, runtime)  # runs before the scheduler is removed
        await recover(runtime, scheduler)
        schedule_periodic(scheduler, runtime)
        reminders = delivery_for(runtime, scheduler)
        if reminders is not None:
            pending = await reminders.rescan()
            log.info("reminders_rearmed", count=pending)
        sweeper = OutboxSweeper(runtime, reminders)
        await sweeper.listen(stack)
        if face is not None:
            await face.activate(runtime, sweeper.wake.set, stack)
        log.info("daemon_started", settings=settings.public_summary(), owner=runtime.owner)
        sweep = asyncio.get_running_loop().create_task(sweeper.run(stop))
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
        await asyncio.wait([sweep, *waiters], return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        _stop_starting_runs(runtime)
        await _finish(sweep)
        if not lost.is_set():
            stop.set()
        log.info("daemon_stopping", leadership_lost=lost.is_set())
    if lost.is_set() and not stop.is_set():
        log.warning("leadership_lost_standing_by", keys_in_flight="finished or left owed")


def _stop_starting_runs(runtime: Runtime) -> None:
    """At once, before anything is torn down: no timer fires, nothing new is claimed."""
    if runtime.scheduler is not None and runtime.scheduler.running:
        runtime.scheduler.pause()
    runtime.coordinator.close()


async def _schema_once_reachable(
    engine: AsyncEngine, settings: Settings, outage: DatabaseOutage, stop: asyncio.Event
) -> SchemaStatus | None:
    """The schema check, waiting for a database that is down when the daemon starts.
    Says so once a minute (scaled by TIME_SCALE); None if stopped while waiting."""
    loop = asyncio.get_running_loop()
    every = settings.time_scale * WAITING_LOG_SECONDS
    said_at: float | None = None
    failures = 0
    while not stop.is_set():
        try:
            status = await schema_status(engine, settings.database_url)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            outage.failed(exc, where="startup")
            if said_at is None or loop.time() - said_at >= every:
                said_at = loop.time()
                log.warning("waiting_for_database", database=redact_url(settings.database_url),
                            error=f"{type(exc).__name__}: {exc}"[:300])
            await _pause(stop, reconnect_delay(failures, settings.time_scale))
            failures += 1
            continue
        outage.reachable()
        return status
    return None


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


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
