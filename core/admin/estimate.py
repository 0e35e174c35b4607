"""How many external calls (and which delivery records) a run of a key will make, from
the same pure plans the syncers follow. ``forget`` plans a force re-sync: Discord grants
still desired lose their records and calendar events their fingerprints, so all of it is
sent again; records of what is no longer desired are kept, so it is still removed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Service, Settings
from core.db.models import CalendarEventRecord, DiscordGrant, ReminderDelivery, SyncType
from core.lanes import Lane
from core.syncers.calendar_plan import AppliedEvent, desired_events, plan_calendar
from core.syncers.discord_plan import CHANNEL_OVERWRITE, Grant, desired_grants, plan_discord
from core.syncers.reminder_plan import (
    ExistingReminder,
    ReminderKey,
    desired_reminders,
    plan_reminders,
)
from core.syncers.snapshot import GroupSnapshot
from core.syncers.snapshot_loader import load_snapshot


@dataclass(frozen=True)
class Estimate:
    calls: int = 0
    overwrites: int = 0  # discord grants the run records
    events: int = 0  # calendar events the run records
    reminders: int = 0  # reminders still due that stay (or become) scheduled

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.calls + other.calls, self.overwrites + other.overwrites,
                        self.events + other.events, self.reminders + other.reminders)


async def estimate_key(
    session: AsyncSession, settings: Settings, sync_type: SyncType, group_id: int,
    now: datetime, *, lane: Lane = Lane.INTERACTIVE, forget: bool = False,
) -> Estimate:
    snapshot = await load_snapshot(session, group_id, now)
    if sync_type is SyncType.DISCORD:
        if not settings.service_enabled(Service.DISCORD):
            return Estimate()
        return _discord(snapshot, await applied_grants(session, group_id), forget)
    if sync_type is SyncType.CALENDAR:
        if not settings.service_enabled(Service.CALENDAR):
            return Estimate()
        return _calendar(snapshot, await applied_events(session, group_id), now, forget)
    if sync_type is SyncType.REMINDERS:
        return await _reminders(session, settings, snapshot, now)
    reads = lane is Lane.BACKGROUND and settings.service_enabled(Service.CALENDAR)
    return Estimate(calls=int(reads and bool(snapshot.calendar_id) and bool(snapshot.upcoming)))


def _discord(snapshot: GroupSnapshot, applied: set[Grant], forget: bool) -> Estimate:
    desired, _ = desired_grants(snapshot)
    if forget:
        applied = applied - desired
    plan = plan_discord(snapshot, applied)
    channels = {g.target_id for g in plan.grant if g.kind == CHANNEL_OVERWRITE}
    calls = len(channels) + len(plan.grant) + len(plan.revoke)
    return Estimate(calls=calls, overwrites=len(plan.grant) + plan.unchanged)


def _calendar(snapshot: GroupSnapshot, applied: list[AppliedEvent], now: datetime,
              forget: bool) -> Estimate:
    desired = desired_events(snapshot)
    if forget:
        # The record stays (it holds the etag); without its fingerprint every desired
        # event is written again in full.
        wanted = {spec.meeting_id for spec in desired}
        applied = [replace(a, fingerprint=None) if a.meeting_id in wanted else a
                   for a in applied]
    plan = plan_calendar(desired, applied, now)
    return Estimate(calls=len(plan.insert) + len(plan.update) + len(plan.cancel),
                    events=len(desired))


async def _reminders(session: AsyncSession, settings: Settings, snapshot: GroupSnapshot,
                     now: datetime) -> Estimate:
    desired = desired_reminders(snapshot, settings.reminder_offsets_minutes)
    rows = (await session.scalars(
        select(ReminderDelivery).where(ReminderDelivery.group_id == snapshot.group_id))).all()
    existing = [ExistingReminder(ReminderKey(r.meeting_id, r.offset_minutes), r.fire_at, r.status)
                for r in rows]
    plan = plan_reminders(desired, existing, now,
                          timedelta(seconds=settings.reminder_grace_seconds))
    return Estimate(reminders=len(plan.schedule) + len(plan.unchanged))


async def applied_grants(session: AsyncSession, group_id: int) -> set[Grant]:
    rows = (await session.scalars(
        select(DiscordGrant).where(DiscordGrant.group_id == group_id))).all()
    return {Grant(r.kind, r.target_id, r.discord_user_id) for r in rows}


async def applied_events(session: AsyncSession, group_id: int) -> list[AppliedEvent]:
    rows = (await session.scalars(
        select(CalendarEventRecord).where(CalendarEventRecord.group_id == group_id))).all()
    return [AppliedEvent(r.meeting_id, r.calendar_id, r.event_id, r.etag, r.fingerprint,
                         r.starts_at, r.cancelled) for r in rows]
