"""Embedding groupsync: one runtime per process, started by the application (DESIGN §2 b).

    from core import embed

    async with embed.start(settings) as groupsync:   # or: gs = await embed.start(...).start()
        ...                                           # public calls in this process use it
    # stopped: in-flight syncs drained, leases released, timers cancelled, engine closed

``GroupsyncRuntime`` is also what ``groupsync run`` (``core.daemon``) runs, so an
embedded runtime has the daemon's behaviour: the schema check, leadership (an advisory
lock on PostgreSQL, a lock file on SQLite), one engine with its limiter, breakers and
coalescing, recovery of owed retries, the outbox sweep woken by NOTIFY or the SQLite
watcher, Calendar incremental sync, and the admin API when a ``face`` is passed. While it
stands by (another daemon leads) nothing runs here and public calls hand off to the
leader, exactly as in a process with no runtime.

An application that already runs its own APScheduler 3 scheduler and assigned it to
``core.notifications.scheduler._scheduler`` keeps it: retry timers go there (the
documented ``sync_retry_{type}_{group}`` jobs), the runtime's own timers (reminders,
periodic work, the one timer of the owed retries re-armed at start) to an internal
AsyncIOScheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.config import Settings, load_settings, redact_url
from core.db.groups import require_known_groups
from core.db.migrate import SchemaStatus, require_current_schema, schema_status
from core.db.problems import SchemaNotCurrent
from core.db.session import create_engine, create_session_factory
from core.engine.health.leadership import leadership
from core.engine.health.outage import DatabaseOutage, is_database_unavailable, reconnect_delay
from core.engine.loops.calendar_push import start_calendar_push
from core.engine.loops.discord_changes import follow_gateway
from core.engine.loops.history_rollups import flush_counts, recording
from core.engine.loops.periodic import schedule_periodic
from core.engine.loops.recovery import recover
from core.engine.loops.sweeper import OutboxSweeper, SweepWake
from core.engine.running.context import RetryTimers, Runtime
from core.engine.running.state import SyncKey
from core.lifecycle import mark_and_run
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SchedulerRetryTimers, SyncScheduler
from core.observability import get_logger
from core.process.slot import SLOT, ProcessSlot, SlotTaken
from core.reminders.delivery import delivery_for
from core.runtime import lease_owner_id, open_runtime
from core.syncers.base import SyncResult
from core.validation import parse_sync_type, require_group_id

log = get_logger("groupsync.runtime")

WAITING_LOG_SECONDS = 60.0  # "waiting for the database", once a minute

class DaemonFace(Protocol):
    """What the runtime serves to operators (``core.admin.face.AdminFace``: the admin API,
    heartbeats, the bulk worker), passed in by the caller so this composition root does
    not import the faces above it. ``open`` runs before leadership (a standby serves
    health and reads; on SQLite, which has no standby, after the file lock is taken),
    ``activate`` once this process leads."""

    async def open(self, engine: AsyncEngine, owner: str, stack: AsyncExitStack) -> None: ...

    async def activate(self, runtime: Runtime, wake: SweepWake, stack: AsyncExitStack) -> None:
        ...


class RuntimeAlreadyRunning(SlotTaken):
    """A second runtime in one process: public calls could not tell which to use."""


class GroupsyncRuntime:
    """One groupsync runtime: ``await start()`` / ``await stop()``, or ``async with``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        engine: AsyncEngine | None = None,
        clock: Clock | None = None,
        face: DaemonFace | None = None,
        role: str = "app",
        stop: asyncio.Event | None = None,
        slot: ProcessSlot = SLOT,
    ) -> None:
        self.settings = settings or load_settings()
        self._engine = engine
        self._clock = clock
        self._face = face
        self._role = role  # "daemon" or "app": lease owner prefix and log event names
        self._stop = stop or asyncio.Event()  # set: stop (the daemon passes its signals')
        self._leading = asyncio.Event()
        self._lost = False
        self._task: asyncio.Task[None] | None = None
        self._owned_engine: AsyncEngine | None = None
        self._slot = slot  # the process's one slot; a test may pass its own
        self.runtime: Runtime | None = None  # set while this process leads

    @property
    def leading(self) -> bool:
        return self._leading.is_set() and not self._stop.is_set()

    @property
    def stopping(self) -> bool:
        """Asked to stop (or stopped): another runtime may take this process's slot."""
        return self._stop.is_set()

    @property
    def leadership_lost(self) -> bool:
        return self._lost

    async def start(self, *, wait: bool = True) -> Self:
        """Check the database, then lead (or stand by). With ``wait`` (default) return
        once this runtime leads; raises what prevents it (schema not at head, another
        daemon on this SQLite file, a syncer factory that fails). A database that is down
        is waited for (``waiting_for_database`` once a minute)."""
        if self._task is not None:
            return self
        try:
            self._slot.claim(self)
        except SlotTaken as exc:
            raise RuntimeAlreadyRunning(str(exc)) from None
        engine = self._engine
        if engine is None:
            try:
                engine = self._owned_engine = create_engine(
                    self.settings.database_url, create_file=False)
            except BaseException:
                self._slot.release(self)
                raise
        if not self.settings.enabled_services:
            log.warning("no_service_enabled", enabled_services=[],
                        effect="discord and calendar syncs succeed as 'disabled'")
        self._task = asyncio.get_running_loop().create_task(self._serve(engine))
        if wait:
            await self._until_leading()
        return self

    async def stop(self) -> None:
        """Stop: in-flight syncs get SHUTDOWN_TIMEOUT_SECONDS, the rest stays owed."""
        self._stop.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            self._slot.release(self)
            await self._dispose_engine()

    async def wait(self) -> None:
        """Until the runtime ends: ``stop()`` from elsewhere, or leadership lost."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _until_leading(self) -> None:
        assert self._task is not None
        leading = asyncio.ensure_future(self._leading.wait())
        try:
            await asyncio.wait([leading, self._task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            leading.cancel()
        if self._task.done():
            await self.stop()  # raises what ended the task

    async def _dispose_engine(self) -> None:
        if self._owned_engine is not None:
            engine, self._owned_engine = self._owned_engine, None
            await engine.dispose()

    async def _serve(self, engine: AsyncEngine) -> None:
        """Schema check (waiting while the database is down) → contend for leadership
        (standby waits there) → one term as leader after another: a lost leadership ends
        the term and the runtime contends again; a database outage of any length is
        ridden out (one log line pair, ``core.engine.health.outage``)."""
        settings, stop, role = self.settings, self._stop, self._role
        outage = DatabaseOutage()  # one per process: one line pair per outage
        status = await _schema_once_reachable(engine, settings, outage, stop)
        if status is None:
            log.info(f"{role}_stopped_while_waiting_for_database")
            return
        if not status.at_head:
            raise SchemaNotCurrent(status.problem())
        async with AsyncExitStack() as stack:
            held: asyncio.Event | None = None
            if settings.is_sqlite:
                # SQLite has no standby: a second daemon on the file is refused here, before
                # its admin port is bound or a heartbeat written; the lock serves every term.
                held = await stack.enter_async_context(
                    leadership(settings.database_url, stop, outage, settings.time_scale))
            if self._face is not None:
                await self._face.open(engine, lease_owner_id(role), stack)
            failures = 0
            while not stop.is_set():
                try:
                    office: contextlib.AbstractAsyncContextManager[asyncio.Event] = (
                        contextlib.nullcontext(held) if held is not None else leadership(
                            settings.database_url, stop, outage, settings.time_scale))
                    async with office as lost:
                        if stop.is_set():
                            log.info(f"{role}_stopped_while_standing_by")
                            break
                        failures = 0
                        await self._lead(engine, lost, outage)
                except Exception as exc:
                    # The database went away while we took office or left it: contend again.
                    if not is_database_unavailable(exc):
                        raise
                    outage.failed(exc, where=role)
                    await _pause(stop, reconnect_delay(failures, settings.time_scale))
                    failures += 1
        log.info(f"{role}_stopped")

    async def _lead(self, engine: AsyncEngine, lost: asyncio.Event, outage: DatabaseOutage) -> None:
        """One term as the active runtime, until ``stop`` or the loss of the leadership.
        On loss nothing new starts; in-flight runs get ``shutdown_timeout_seconds`` to
        finish under their fences, the rest are abandoned (their keys stay owed)."""
        settings, stop, role = self.settings, self._stop, self._role
        async with AsyncExitStack() as stack:
            own = SyncScheduler()
            app_scheduler = scheduler_module.current_scheduler()
            timers: RetryTimers = own if app_scheduler is None else SchedulerRetryTimers(
                app_scheduler)
            runtime = await open_runtime(
                settings, stack, scheduler=own, retry_timers=timers, engine=engine,
                clock=self._clock, owner_kind=role, outage=outage,
            )
            own.start()
            stack.callback(_shut_down, own)
            # Entered before the drain: its last flush counts the runs the drain finishes.
            await stack.enter_async_context(recording(runtime))
            # The slot holds the runtime; ``own`` becomes ``_scheduler`` unless the
            # application put its own there.
            stack.enter_context(scheduler_module.installed(runtime, own))
            stack.push_async_callback(_drain, runtime, own)  # before the scheduler stops
            await recover(runtime, own)  # its one timer lives in the runtime's own scheduler
            schedule_periodic(own, runtime)
            await follow_gateway(runtime, stack)  # closed before the drain: no new repairs
            await start_calendar_push(runtime, stack)  # its channels stop as the term ends
            reminders = delivery_for(runtime, own)
            if reminders is not None:
                pending = await reminders.rescan()
                log.info("reminders_rearmed", count=pending)
            sweeper = OutboxSweeper(runtime, reminders)
            await sweeper.listen(stack)
            if self._face is not None:
                await self._face.activate(runtime, sweeper.wake, stack)
            self.runtime = runtime
            log.info(f"{role}_started", settings=settings.public_summary(), owner=runtime.owner)
            self._leading.set()
            sweep = asyncio.get_running_loop().create_task(sweeper.run(stop))
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            await asyncio.wait([sweep, *waiters], return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            self._leading.clear()
            _stop_starting_runs(runtime, own)
            await _finish(sweep, graceful=stop.is_set())
            if not lost.is_set():
                stop.set()
            else:
                self._lost = True
            log.info(f"{role}_stopping", leadership_lost=lost.is_set())
        self.runtime = None
        if lost.is_set() and not stop.is_set():
            log.warning("leadership_lost_standing_by", keys_in_flight="finished or left owed")


def start(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    face: DaemonFace | None = None,
) -> GroupsyncRuntime:
    """The embedding API: a runtime for this process, to use as ``async with`` (or call
    ``await .start()`` and ``await .stop()``). ``settings`` default to the environment;
    ``engine`` may be the application's own SQLAlchemy ``AsyncEngine`` (not disposed);
    ``face=core.admin.face.AdminFace(settings)`` serves the admin API as the daemon does."""
    return GroupsyncRuntime(settings, engine=engine, face=face)


async def run_once(settings: Settings, sync_type: str, group_id: int) -> SyncResult:
    """One sync in this process and nothing else (``groupsync retry --here``): a one-shot
    runtime for one run, under the same lease as the daemon's runs."""
    key = SyncKey(parse_sync_type(sync_type), require_group_id(group_id))
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url, create_file=False)
        stack.push_async_callback(engine.dispose)
        await require_current_schema(engine, settings.database_url)
        async with create_session_factory(engine)() as session:
            await require_known_groups(session, [key.group_id])  # makes no key for nothing
        runtime = await open_runtime(settings, stack, engine=engine, owner_kind="cli")
        (result,) = await mark_and_run(runtime, [key])
        with contextlib.suppress(Exception):
            await flush_counts(runtime)  # this one run's counts join the history
        return result


def _shut_down(scheduler: SyncScheduler) -> None:
    if scheduler.running:
        scheduler.shutdown(wait=False)


def _stop_starting_runs(runtime: Runtime, scheduler: SyncScheduler) -> None:
    """At once, before anything is torn down: no timer fires, nothing new is claimed."""
    if scheduler.running:
        scheduler.pause()
    runtime.coordinator.close()


async def _schema_once_reachable(
    engine: AsyncEngine, settings: Settings, outage: DatabaseOutage, stop: asyncio.Event
) -> SchemaStatus | None:
    """The schema check, waiting for a database that is down at start-up. Says so once a
    minute (scaled by TIME_SCALE); None if stopped while waiting. A database that is
    there but wrong (missing file, refused credentials) raises at once."""
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


async def _drain(runtime: Runtime, scheduler: SyncScheduler) -> None:
    if scheduler.running:
        scheduler.pause()  # no new timers fire while we wait
    cancelled = await runtime.coordinator.drain(runtime.settings.shutdown_timeout_seconds)
    if cancelled:
        log.warning("runs_cancelled_at_shutdown", count=cancelled, keys_remain="owed")


async def _finish(task: asyncio.Task[None], *, graceful: bool) -> None:
    if graceful:
        await asyncio.wait([task], timeout=1.0)  # stop is set: the sweep ends by itself
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await task
        except Exception:
            log.exception("sweep_crashed")
