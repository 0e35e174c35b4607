"""The outbox sweep: run owed, due, unleased keys soon after they are committed.

On PostgreSQL a LISTEN on the outbox channel wakes the sweep at the commit of a
``mark_owed`` (its NOTIFY is transactional); polling every ``outbox_poll_seconds`` is
the fallback everywhere. The sweep also catches overdue retries whose timer was lost,
and periodically frees expired leases of processes that died mid-run. Reminder rows ride
the same mechanism: a reminders sync NOTIFYs its own channel, and every sweep re-reads
the pending reminder rows so the delivery's timers follow them (core/reminders/delivery.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AsyncExitStack
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.db.urls import sqlite_path
from core.engine.health.outage import is_database_unavailable, reconnect_delay
from core.engine.loops.wakeup import watch_sqlite
from core.engine.running import runner, state
from core.engine.running.outbox import OUTBOX_CHANNEL
from core.engine.running.pauses import sync_types_of
from core.observability import get_logger
from core.reminders.sync import REMINDERS_CHANNEL
from core.syncers.types import service_of

if TYPE_CHECKING:
    from core.clients.status import ServiceStatus
    from core.engine.running.context import Runtime
    from core.engine.running.state import SyncKey
    from core.reminders.delivery import ReminderDelivery

log = get_logger("groupsync.sweeper")

SWEEP_BATCH = 200
# While more of the sweep's own runs than this are in flight, it does not scan again: the
# keys it would find are the ones being drained (a scan of up to SWEEP_BATCH rows each
# wake, for nothing). The run that brings the count back down wakes it.
SWEEP_BUSY = 50
# Idle, with NOTIFY or the file watch to wake it, the sweep looks every this many polls.
IDLE_POLLS = 10


class SweepWake(asyncio.Event):
    """The sweep's wake-up (a NOTIFY, the SQLite file written, this process's own
    requests), passed on to ``followers``: loops that wait for the same commits (the bulk
    worker) need no poll of their own."""

    def __init__(self) -> None:
        super().__init__()
        self.followers: list[asyncio.Event] = []

    def set(self) -> None:
        super().set()
        for follower in self.followers:
            follower.set()


class OutboxSweeper:
    def __init__(self, rt: Runtime, reminders: ReminderDelivery | None = None) -> None:
        self.rt = rt
        self.reminders = reminders
        self.wake = SweepWake()
        self._next_reap = 0.0
        self._listener: Any = None
        self._listening = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._idle = False  # the last sweep found nothing due
        self._follows_file = False  # SQLite: the kernel says when the file is written

    async def listen(self, stack: AsyncExitStack) -> None:
        """PostgreSQL only: a dedicated asyncpg connection whose NOTIFYs wake the sweep.
        Re-opened by the sweep after a database outage closed it."""
        if self.rt.settings.is_sqlite:
            # SQLite: a watcher of the file's commits (core.engine.loops.wakeup) stands in.
            path = sqlite_path(self.rt.settings.database_url)
            if path is not None:
                self._follows_file = await watch_sqlite(path, self.wake, stack)
            return
        self._listening = True
        stack.push_async_callback(self._close_listener)
        await self._listen()

    async def _listen(self) -> None:
        import asyncpg

        from core.db.urls import asyncpg_dsn

        try:
            connection = await asyncio.wait_for(
                asyncpg.connect(asyncpg_dsn(self.rt.settings.database_url)), timeout=10
            )
        except (OSError, asyncpg.PostgresError) as exc:
            if not self.rt.outage.down:
                log.warning("outbox_listen_unavailable", error=str(exc), fallback="polling")
            return

        def on_notify(*_args: Any) -> None:
            self.wake.set()

        try:
            await connection.add_listener(OUTBOX_CHANNEL, on_notify)
            await connection.add_listener(REMINDERS_CHANNEL, on_notify)
        except Exception:
            await _close_quietly(connection)
            return
        self._listener = connection

    async def _close_listener(self) -> None:
        self._listening = False
        if self._listener is not None:
            await _close_quietly(self._listener)
            self._listener = None

    async def run(self, stop: asyncio.Event) -> None:
        poll = self.rt.settings.outbox_poll_seconds
        failures = 0
        while not stop.is_set():
            delay = poll
            self.wake.clear()  # before the sweep: a wake during it means sweep again
            try:
                await self.sweep_once()
            except Exception as exc:
                if not is_database_unavailable(exc):
                    log.exception("outbox_sweep_failed")
                else:  # one line per outage, and capped backoff rather than the poll
                    self.rt.outage.failed(exc, where="outbox_sweep")
                    delay = min(poll, reconnect_delay(failures, self.rt.time_scale.factor))
                    failures += 1
            else:
                failures = 0
                self.rt.outage.reachable()
                if self._listening and (self._listener is None or self._listener.is_closed()):
                    await self._listen()  # the outage closed it: NOTIFYs wake us again
                delay = self._idle_delay(poll)
            waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def sweep_once(self) -> int:
        rt = self.rt
        now = rt.clock.now()
        await self._reap_if_due(now)
        # A service that rejected the credentials: its keys wait in their rows; its probe
        # (one call a scaled minute, in the background) decides when they run again.
        if rt.credentials.known():
            await rt.credentials.tick(rt.client_board, now, self.wake.set)
        self._idle = False
        if len(self._in_flight) > SWEEP_BUSY:
            if self.reminders is not None:
                await self.reminders.rescan()
            return 0
        statuses = rt.client_board.statuses()
        probing = rt.parking.probe_types(time.monotonic(), statuses)
        keys = await self._due_keys(now, statuses)
        self._idle = not keys
        started = 0
        probes: set[str | None] = set()
        for key in keys:
            if rt.coordinator.busy(key):
                continue  # already running or queued here; that run sees the new request
            if key.sync_type in probing:
                # Half-open: one key per service is the probe; the rest wait for its outcome
                # in their rows rather than be spawned only to be parked (a batch a window).
                if service_of(key.sync_type) in probes:
                    continue
                probes.add(service_of(key.sync_type))
            task = rt.coordinator.spawn(runner.run_key_quietly(rt, key, reason="outbox"))
            self._in_flight.add(task)
            task.add_done_callback(self._run_ended)
            started += 1
        if self.reminders is not None:
            await self.reminders.rescan()  # timers follow the rows, whoever wrote them
        return started

    def _idle_delay(self, poll: float) -> float:
        """The wait before the next sweep when nothing woke it. Idle (the last sweep found
        nothing due, no service rejected) with a wake source that works (NOTIFY, or the
        kernel's word on the SQLite file), new work wakes it: it looks only every
        IDLE_POLLS polls, and at the next lease reap (an idle daemon's sweep every poll was
        most of its CPU, issue 26). Otherwise: every poll."""
        if not (self._idle and self._wakes_reliably()) or self.rt.credentials.known():
            return poll
        until_reap = self._next_reap - asyncio.get_running_loop().time()
        return max(poll, min(poll * IDLE_POLLS, until_reap))

    def _wakes_reliably(self) -> bool:
        if self.rt.settings.is_sqlite:
            return self._follows_file
        return self._listener is not None and not self._listener.is_closed()

    async def _reap_if_due(self, now: datetime) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_reap:
            self._next_reap = loop.time() + min(self.rt.settings.lease_seconds / 2, 30.0)
            freed = await state.reclaim_leases(self.rt.session_factory, now)
            if freed:
                log.info("leases_reclaimed", count=freed, reason="expired")

    async def _due_keys(self, now: datetime, statuses: list[ServiceStatus]) -> list[SyncKey]:
        """Due keys, without those whose service is parked, paused or rejected. One
        statement when nothing is due (an idle daemon's sweep, issue 26): the pause and
        credential rows are read only when there are keys they could hold back."""
        rt = self.rt
        keys = await state.due_keys(rt.session_factory, now, SWEEP_BATCH)
        if not keys:
            return keys
        await rt.credentials.tick(rt.client_board, now, self.wake.set)  # rows re-read
        skip = (set(rt.parking.parked_types(time.monotonic(), statuses))
                | sync_types_of(set(await rt.pauses.paused_services()))
                | await rt.credentials.parked_types())
        if not any(key.sync_type in skip for key in keys):
            return keys
        # Again with the held-back types left out in SQL, so they cannot fill the batch
        # and starve the others.
        return await state.due_keys(rt.session_factory, now, SWEEP_BATCH, skip_types=skip)

    def _run_ended(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if len(self._in_flight) == SWEEP_BUSY:
            self.wake.set()  # room again: the scans it skipped are owed now


async def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), timeout=5)
