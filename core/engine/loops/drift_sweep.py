"""The drift sweep (DESIGN §3, background lane): every group reconciled with the live
services once per ``DRIFT_SWEEP_PERIOD_SECONDS``, within a share of the rate limits.

Each tick takes the groups whose discord/calendar keys were reconciled longest ago (a
membership-driven sync reads the live state too, so it counts) and runs those keys
through the engine in the background lane. The syncers log and count every repair
(``drift_repaired``); a sweep never touches what people made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select

from core.config import Settings
from core.db.models import Group, SyncState, SyncStatus, SyncType
from core.engine.loops.periodic_jobs import add_periodic_job
from core.engine.running import runner
from core.engine.running.outbox import mark_owed
from core.engine.running.state import SyncKey
from core.lanes import Lane
from core.metrics import DRIFT_SWEEP_GROUPS
from core.observability import get_logger
from core.syncers import types as registry

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from core.db.session import SessionFactory
    from core.engine.running.context import Runtime

log = get_logger("groupsync.drift_sweep")
DRIFT_SWEEP_JOB = "drift_sweep"
# Calls one group's sweep costs at most without drift: two channel reads and one list.
CALLS_PER_GROUP = 3


def swept_types(settings: Settings) -> list[SyncType]:
    """The registered types whose syncers read live state, of the enabled services."""
    return [spec.sync_type for spec in registry.registered()
            if spec.drift and (spec.service is None or settings.service_enabled(spec.service))]


@dataclass(frozen=True)
class Budget:
    """How many groups one tick may sweep: enough to cover every group once per period,
    no more than the rate share allows."""

    groups: int

    @classmethod
    def for_tick(cls, settings: Settings, total_groups: int) -> Budget:
        share = settings.drift_sweep_rate_share * settings.drift_sweep_tick_seconds
        calls = min(
            settings.discord_requests_per_second * share,
            settings.calendar_requests_per_minute_user / 60 * share,
        )
        by_rate = max(1, int(calls // CALLS_PER_GROUP))
        ticks = max(1.0, settings.drift_sweep_period_seconds / settings.drift_sweep_tick_seconds)
        by_period = math.ceil(total_groups / ticks)
        return cls(min(by_rate, by_period))


async def groups_to_sweep(
    session_factory: SessionFactory, types: list[SyncType], limit: int
) -> tuple[list[int], int]:
    """The ``limit`` active groups run longest ago (never first), and how many active
    groups there are. Last run, not last success: a group failing on a deleted channel is
    retried every minute and must not take every tick's place from the healthy ones."""
    last = (
        select(SyncState.group_id, func.min(SyncState.last_attempt_at).label("at"))
        .where(SyncState.sync_type.in_([str(t) for t in types]))
        .group_by(SyncState.group_id)
        .subquery()
    )
    async with session_factory() as session:
        total = int(
            await session.scalar(select(func.count()).where(Group.archived.is_(False))) or 0
        )
        rows = await session.execute(
            select(Group.id)
            .outerjoin(last, last.c.group_id == Group.id)
            .where(Group.archived.is_(False))
            .order_by(last.c.at.is_not(None), last.c.at, Group.id)
            .limit(limit)
        )
        return list(rows.scalars()), total


async def sweep_once(rt: Runtime) -> int:
    """One tick: reconcile the next batch of groups; returns how many were swept."""
    types = swept_types(rt.settings)
    if not types:
        return 0
    _, total = await groups_to_sweep(rt.session_factory, types, 0)
    budget = Budget.for_tick(rt.settings, total)
    group_ids, _ = await groups_to_sweep(rt.session_factory, types, budget.groups)
    swept = 0
    for group_id in group_ids:
        swept += await _sweep_group(rt, group_id, types, rt.clock.now())
    log.info("drift_sweep_done", groups=len(group_ids), swept=swept, of=total)
    return swept


async def _sweep_group(rt: Runtime, group_id: int, types: list[SyncType], now: datetime) -> int:
    async with rt.session_factory() as session, session.begin():
        # A failing key is owed already and its retry timer runs it: marked owed again it
        # would run once more behind that retry, sooner than its backoff (a deleted
        # channel: once a minute). A key running now reads the live state anyway. A held
        # key waits for an operator: re-planned by the sweep it lost its hold to any
        # failure of the re-read (a browser test saw a held key shown behind the open
        # circuit), and its plan cannot change while its membership has not.
        waiting = set((await session.scalars(
            select(SyncState.sync_type).where(
                SyncState.group_id == group_id,
                SyncState.sync_type.in_([str(t) for t in types]),
                or_(SyncState.attempt > 0,
                    SyncState.status == SyncStatus.HELD.value,
                    and_(SyncState.lease_owner.is_not(None),
                         SyncState.lease_expires_at >= now)),
            )
        )).all())
        types = [t for t in types if str(t) not in waiting]
        if types:
            await mark_owed(session, [group_id], now, types)
    ran = 0
    for sync_type in types:
        result = await runner.run_key(
            rt, SyncKey(sync_type, group_id), lane=Lane.BACKGROUND, reason="drift_sweep"
        )
        if "skipped" not in result:
            DRIFT_SWEEP_GROUPS.labels(sync_type).inc()
            ran = 1
    return ran


async def drift_sweep_job(rt: Runtime) -> None:
    """Bound to its runtime when scheduled: no process-wide handle is looked up."""
    await sweep_once(rt)


def schedule_drift_sweep(scheduler: BaseScheduler, rt: Runtime) -> None:
    add_periodic_job(scheduler, drift_sweep_job, rt, DRIFT_SWEEP_JOB,
                     rt.settings.drift_sweep_tick_seconds)
