"""The history loop (issue 23): once a scaled minute, the process's counts into SQL.

Every runtime that leads flushes its own counts (runs, external calls, rate-limit waits,
latency: ``core.history.tally``), adding them into the rows other daemons wrote, and at
the end of its term, so a standby that takes over or a restarted daemon loses none. The
leader also samples the owed keys once a minute and prunes rows past their retention.
One SELECT, one INSERT and one DELETE a minute; nothing per run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING

from core.engine.health.outage import is_database_unavailable
from core.history import store
from core.history.grid import MINUTE, Grid
from core.history.tally import TALLY, Tally
from core.observability import get_logger
from core.syncers import types as registry

if TYPE_CHECKING:
    from core.engine.running.context import Runtime

log = get_logger("groupsync.history")


def _grid(rt: Runtime) -> Grid:
    return Grid(rt.time_scale.factor)


async def flush_counts(rt: Runtime, tally: Tally = TALLY) -> int:
    """Write what the tally holds; on a database error the counts go back to it."""
    entries = tally.take()
    try:
        return await store.flush(rt.session_factory, entries, _grid(rt))
    except BaseException:
        tally.put_back(entries)
        raise


async def tick(rt: Runtime, now: datetime, tally: Tally = TALLY) -> None:
    settings = rt.settings
    owed = await store.owed_by_type(rt.session_factory)
    # Every registered type is sampled, none owed included: a chart's line shows the zero.
    for sync_type in dict.fromkeys([*registry.names(), *owed]):
        tally.add("owed", sync_type, owed.get(sync_type, 0), at=now)
    await flush_counts(rt, tally)
    await store.prune(rt.session_factory, now, _grid(rt),
                      settings.history_minute_retention_days,
                      settings.history_hour_retention_days)


def until_next_minute(now: datetime, grid: Grid) -> float:
    """Seconds to just after the next minute boundary (a twentieth of a minute in)."""
    start = grid.start(now, MINUTE)
    width = grid.width(MINUTE)
    return max(0.0, (start + width + width / 20 - now).total_seconds())


async def _loop(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(until_next_minute(rt.clock.now(), _grid(rt)))
        try:
            await tick(rt, rt.clock.now())
        except Exception as exc:
            if not is_database_unavailable(exc):
                log.exception("history_flush_failed")
            else:
                rt.outage.failed(exc, where="history")  # the next minute catches up


@contextlib.asynccontextmanager
async def recording(rt: Runtime) -> AsyncIterator[None]:
    """The loop for as long as the term lasts; its last counts flushed when it ends."""
    task = asyncio.get_running_loop().create_task(_loop(rt))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await flush_counts(rt)
        except Exception as exc:  # the database is away: the counts stay in memory
            log.warning("history_not_flushed", error=str(exc)[:300])
