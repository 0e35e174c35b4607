"""What a daemon does when it starts or takes over: free leases that expired by
heartbeat and re-arm every owed retry from the rows, with the attempt count and due time
they had (an overdue one fires at once).

The rows are re-armed with one timer, not one per row (issue 26: 100,000 owed retries
were 100,000 APScheduler jobs, 7-12 s to arm and some 150 MB held). ``OwedRetryWatch``
arms the APScheduler date job ``owed_retries_due`` at the earliest due time among the
owed rows; when it fires it runs every owed key due by then (reason ``retry``, as the
key's own timer would) and arms itself again for the next earliest. The rows stay the one
source of truth: a run's failure arms that key's own ``sync_retry_{type}_{group}`` timer
as before, a success clears the row, and the watch only ever reads the rows.

Winning the advisory lock does not prove the previous leader dead: its lock connection
may only have dropped while its runs go on renewing their leases. Those leases are left
alone; their keys run here once their runs end or their leases expire (see
docs/decisions.md, "How long a key may wait after failover").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import case, func, literal, select, tuple_

from core.db.models import SyncState, SyncType
from core.engine.running import runner, state
from core.engine.running.state import SyncKey, lease_free, owed
from core.observability import get_logger

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from core.db.session import SessionFactory
    from core.engine.running.context import Runtime

log = get_logger("groupsync.recovery")

OWED_RETRIES_JOB = "owed_retries_due"
PAGE = 2000  # due keys read per statement when the watch fires
RETRY_AFTER_ERROR_SECONDS = 5.0  # backoff seconds (scaled) before the watch looks again


async def recover(rt: Runtime, scheduler: BaseScheduler) -> int:
    """Free expired leases, then arm one timer for every owed retry; returns how many."""
    now = rt.clock.now()
    freed = await state.reclaim_leases(rt.session_factory, now)
    count, overdue, earliest = await owed_summary(rt.session_factory, now)
    watch = OwedRetryWatch(rt, scheduler)
    if earliest is not None:
        watch.arm(max(earliest, now))
    log.info("retries_rearmed", count=count, overdue=overdue, leases_freed=freed)
    return count


async def owed_summary(
    session_factory: SessionFactory, now: datetime
) -> tuple[int, int, datetime | None]:
    """(owed retries, how many are overdue, the earliest due time) in one statement."""
    stmt = select(
        func.count(),
        func.coalesce(func.sum(case((SyncState.next_attempt_at <= now, 1), else_=0)), 0),
        func.min(SyncState.next_attempt_at),
    ).where(owed(), SyncState.next_attempt_at.is_not(None))
    async with session_factory() as session:
        count, overdue, earliest = (await session.execute(stmt)).one()
    return int(count), int(overdue), earliest


async def earliest_after(session_factory: SessionFactory, after: datetime) -> datetime | None:
    """The earliest due time of an owed retry later than ``after``."""
    stmt = select(func.min(SyncState.next_attempt_at)).where(
        owed(), SyncState.next_attempt_at > after)
    async with session_factory() as session:
        return await session.scalar(stmt)


async def due_page(
    session_factory: SessionFactory, now: datetime,
    after: tuple[datetime, str, int] | None, limit: int = PAGE,
) -> list[tuple[datetime, str, int]]:
    """Owed, unleased keys due by ``now``, in due order, after the key ``after`` (a held
    key's due time is its re-check)."""
    stmt = select(SyncState.next_attempt_at, SyncState.sync_type, SyncState.group_id).where(
        owed(), SyncState.next_attempt_at <= now, lease_free(now))
    if after is not None:
        at, sync_type, group_id = after
        stmt = stmt.where(
            tuple_(SyncState.next_attempt_at, SyncState.sync_type, SyncState.group_id)
            > tuple_(literal(at, SyncState.next_attempt_at.type), literal(sync_type),
                     literal(group_id)))
    stmt = stmt.order_by(SyncState.next_attempt_at, SyncState.sync_type,
                         SyncState.group_id).limit(limit)
    async with session_factory() as session:
        rows = (await session.execute(stmt)).all()
    return [(at, str(t), int(g)) for at, t, g in rows if at is not None]


class OwedRetryWatch:
    """One APScheduler date job standing for every owed retry of the rows."""

    def __init__(self, rt: Runtime, scheduler: BaseScheduler) -> None:
        self.rt = rt
        self.scheduler = scheduler

    def arm(self, at: datetime) -> None:
        self.scheduler.add_job(
            self.fire, trigger="date", run_date=at, id=OWED_RETRIES_JOB, name=OWED_RETRIES_JOB,
            replace_existing=True,
            misfire_grace_time=None,  # a late look still runs (DESIGN §6a)
            coalesce=True,
            max_instances=1000,  # re-armed from inside its own run: never skipped
        )

    async def fire(self) -> None:
        """Run every owed key due now, then arm for the next earliest due time."""
        rt = self.rt
        now = rt.clock.now()
        try:
            started = await self._run_due(now)
            following = await earliest_after(rt.session_factory, now)
        except Exception as exc:  # the database blinked: look again soon (the sweep too)
            log.warning("owed_retries_watch_failed", error=str(exc)[:300])
            self.arm(now + timedelta(seconds=rt.time_scale.seconds(RETRY_AFTER_ERROR_SECONDS)))
            return
        log.debug("owed_retries_due", started=started,
                  next_at=following.isoformat() if following else None)
        if following is not None:
            self.arm(following)

    async def _run_due(self, now: datetime) -> int:
        rt, after, started = self.rt, None, 0
        while True:
            page = await due_page(rt.session_factory, now, after)
            for _at, sync_type, group_id in page:
                key = SyncKey(SyncType(sync_type), group_id)
                if rt.coordinator.busy(key):
                    continue  # already running or queued here; that run sees the row
                rt.coordinator.spawn(runner.run_key_quietly(rt, key, reason="retry"))
                started += 1
            if len(page) < PAGE:
                return started
            after = page[-1]
