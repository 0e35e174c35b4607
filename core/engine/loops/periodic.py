"""Periodic background work: the RSVP refresh (DESIGN §4, background lane).

Every RSVP_REFRESH_SECONDS the daemon reads attendees' answers for each active group
with upcoming meetings. Runs go through the engine like any sync (lease, record, retry),
but in the background lane, so client-side limits throttle them first and a rate limit
they meet does not pause membership-driven work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from core.db.models import Group, Meeting, SyncType
from core.engine.health.outage import is_database_unavailable
from core.engine.loops.periodic_jobs import add_periodic_job
from core.engine.running import runner
from core.engine.running.outbox import mark_owed
from core.engine.running.state import SyncKey
from core.lanes import Lane
from core.observability import get_logger

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from core.engine.running.context import Runtime

log = get_logger("groupsync.periodic")
RSVP_REFRESH_JOB = "rsvp_refresh"


async def groups_with_upcoming_meetings(rt: Runtime) -> list[int]:
    async with rt.session_factory() as session:
        rows = await session.execute(
            select(Group.id)
            .join(Meeting, Meeting.group_id == Group.id)
            .where(Group.archived.is_(False), Meeting.starts_at > rt.clock.now())
            .distinct()
            .order_by(Group.id)
        )
        return list(rows.scalars())


async def refresh_rsvps(rt: Runtime) -> int:
    """One pass over every active group; returns how many groups were refreshed."""
    group_ids = await groups_with_upcoming_meetings(rt)
    refreshed = 0
    for group_id in group_ids:
        async with rt.session_factory() as session, session.begin():
            await mark_owed(session, [group_id], rt.clock.now(), [SyncType.RSVPS])
        key = SyncKey(SyncType.RSVPS, group_id)
        result = await runner.run_key(rt, key, lane=Lane.BACKGROUND, reason="rsvp_refresh")
        refreshed += "skipped" not in result
    log.info("rsvp_refresh_done", groups=len(group_ids), refreshed=refreshed)
    return refreshed


async def rsvp_refresh_job(rt: Runtime) -> None:
    """Bound to its runtime when scheduled: no process-wide handle is looked up."""
    try:
        await refresh_rsvps(rt)
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        rt.outage.failed(exc, where="rsvp_refresh")  # the next refresh catches up


def schedule_periodic(scheduler: BaseScheduler, rt: Runtime) -> None:
    from core.engine.loops.drift_sweep import schedule_drift_sweep

    schedule_drift_sweep(scheduler, rt)
    add_periodic_job(scheduler, rsvp_refresh_job, rt, RSVP_REFRESH_JOB,
                     rt.settings.rsvp_refresh_seconds)
