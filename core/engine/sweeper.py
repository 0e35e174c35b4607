"""The outbox sweep: run owed, due, unleased keys soon after they are committed.

On PostgreSQL a LISTEN on the outbox channel wakes the sweep at the commit of a
``mark_owed`` (its NOTIFY is transactional); polling every ``outbox_poll_seconds`` is
the fallback everywhere. The sweep also catches overdue retries whose timer was lost,
and periodically frees expired leases of processes that died mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from core.engine import runner, state
from core.engine.outbox import OUTBOX_CHANNEL
from core.observability import get_logger

if TYPE_CHECKING:
    from core.runtime import Runtime

log = get_logger("groupsync.sweeper")

SWEEP_BATCH = 200


class OutboxSweeper:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.wake = asyncio.Event()
        self._next_reap = 0.0

    async def listen(self, stack: AsyncExitStack) -> None:
        """PostgreSQL only: a dedicated asyncpg connection whose NOTIFYs wake the sweep."""
        if self.rt.settings.is_sqlite:
            return
        import asyncpg

        from core.engine.leadership import asyncpg_dsn

        try:
            connection = await asyncpg.connect(asyncpg_dsn(self.rt.settings.database_url))
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox_listen_unavailable", error=str(exc), fallback="polling")
            return
        stack.push_async_callback(_close_quietly, connection)

        def on_notify(*_args: Any) -> None:
            self.wake.set()

        await connection.add_listener(OUTBOX_CHANNEL, on_notify)

    async def run(self, stop: asyncio.Event) -> None:
        poll = self.rt.settings.outbox_poll_seconds
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception:  # the database blinked: log, keep polling
                log.exception("outbox_sweep_failed")
            self.wake.clear()
            waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def sweep_once(self) -> int:
        rt = self.rt
        now = rt.clock.now()
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_reap:
            self._next_reap = loop.time() + min(rt.settings.lease_seconds / 2, 30.0)
            freed = await state.reclaim_leases(rt.session_factory, now)
            if freed:
                log.info("leases_reclaimed", count=freed, reason="expired")
        keys = await state.due_keys(rt.session_factory, now, SWEEP_BATCH)
        started = 0
        for key in keys:
            if rt.coordinator.busy(key):
                continue  # already running or queued here; that run sees the new request
            rt.coordinator.spawn(runner.run_key_quietly(rt, key, reason="outbox"))
            started += 1
        return started


async def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), timeout=5)
