"""How many external calls (and which delivery records) a run of a built-in key will make,
from the same pure plans the syncers follow, assuming the live services hold what the
records say (drift found by the run's reads adds repairs). ``forget`` plans a force
re-sync: Discord grants still desired are marked ``resend`` and calendar events lose
their fingerprints, so all of it is sent again; what is no longer desired is still
removed. Each sync type's spec names its estimator; ``core.admin.estimate`` asks it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clients.ports import MEMBER_OVERWRITE, Overwrite
from core.config import Service, Settings
from core.db.models import (
    CalendarEventRecord,
    DeliveryState,
    DiscordGrant,
    ReminderDelivery,
)
from core.lanes import Lane
from core.reminders.plan import (
    ExistingReminder,
    ReminderKey,
    desired_reminders,
    plan_reminders,
)
from core.syncers.calendar_plan import (
    AppliedEvent,
    desired_events,
    live_event,
    plan_calendar,
)
from core.syncers.calendar_plan import Step as CalStep
from core.syncers.discord_plan import (
    CHANNEL_OVERWRITE,
    RESEND,
    TEXT_ALLOW,
    Grant,
    LiveDiscord,
    Step,
    channel_targets,
    channels_to_read,
    desired_grants,
    members_to_read,
    plan_discord,
)
from core.syncers.snapshot import GroupSnapshot
from core.syncers.spec import Estimate, EstimateInput
from core.syncers.view import calendar_call, discord_call


async def discord_estimate(given: EstimateInput) -> Estimate:
    if not given.settings.service_enabled(Service.DISCORD):
        return Estimate()
    records = await applied_grants(given.session, given.snapshot.group_id)
    return _discord(given.snapshot, records, given.forget)


async def calendar_estimate(given: EstimateInput) -> Estimate:
    if not given.settings.service_enabled(Service.CALENDAR):
        return Estimate()
    applied = await applied_events(given.session, given.snapshot.group_id)
    return _calendar(given.snapshot, applied, given.now, given.forget)


async def reminders_estimate(given: EstimateInput) -> Estimate:
    return await _reminders(given.session, given.settings, given.snapshot, given.now)


async def rsvps_estimate(given: EstimateInput) -> Estimate:
    # One read of the calendar's responses, only in the background refresh.
    reads = given.lane is Lane.BACKGROUND and given.settings.service_enabled(Service.CALENDAR)
    snapshot = given.snapshot
    return Estimate(calls=int(reads and bool(snapshot.calendar_id) and bool(snapshot.upcoming)))


def _discord(snapshot: GroupSnapshot, records: dict[Grant, str], forget: bool) -> Estimate:
    """Reads (one per channel, one per member where a role is used) plus the writes the
    plan makes if the live state is what the records say; ``forget``: every desired
    grant is assumed missing, the worst case of a force re-sync."""
    channels = channels_to_read(snapshot, records)
    members = members_to_read(snapshot, records)
    live = _live_as_recorded(snapshot, records, channels, members)
    desired, _ = desired_grants(snapshot)
    if forget:
        records = {g: RESEND if g in desired else state for g, state in records.items()}
    plan = plan_discord(snapshot, records, live)
    writes = plan.steps(Step.GRANT, Step.RESTORE, Step.REVOKE)
    return Estimate(calls=len(channels) + len(members) + len(writes), overwrites=len(desired),
                    sends=_sends(discord_call(a) for a in writes))


def _live_as_recorded(
    snapshot: GroupSnapshot, records: dict[Grant, str], channels: list[str], members: list[str]
) -> LiveDiscord:
    allows = {target: allow for _, target, allow in channel_targets(snapshot)}
    overwrites: dict[str, dict[str, Overwrite]] = {c: {} for c in channels}
    roles: dict[str, set[str]] = {m: set() for m in members}
    for grant in records:
        if grant.kind == CHANNEL_OVERWRITE:
            allow = allows.get(grant.target_id, TEXT_ALLOW)
            overwrites[grant.target_id][grant.discord_user_id] = Overwrite(
                grant.discord_user_id, MEMBER_OVERWRITE, allow, 0)
        else:
            roles.setdefault(grant.discord_user_id, set()).add(grant.target_id)
    return LiveDiscord(overwrites, {m: frozenset(r) for m, r in roles.items()})


def _calendar(snapshot: GroupSnapshot, applied: list[AppliedEvent], now: datetime,
              forget: bool) -> Estimate:
    """One list of the calendar plus the writes the plan makes if the live events are
    what the records say; ``forget``: every desired event is assumed missing."""
    desired = desired_events(snapshot)
    if forget:
        # The record stays (it holds the etag); without its fingerprint every desired
        # event is written again in full.
        wanted = {spec.meeting_id for spec in desired}
        applied = [replace(a, fingerprint=None) if a.meeting_id in wanted else a
                   for a in applied]
    recorded = {(a.calendar_id, a.event_id) for a in applied if not a.cancelled and not a.pending}
    live = {spec.event_id: live_event({**spec.body, "status": "confirmed"})
            for spec in desired if (spec.calendar_id, spec.event_id) in recorded}
    plan = plan_calendar(desired, applied, now, live, snapshot.calendar_id)
    writes = plan.steps(CalStep.INSERT, CalStep.UPDATE, CalStep.CANCEL)
    reads = int(bool(snapshot.exists and snapshot.calendar_id))
    return Estimate(calls=reads + len(writes), events=len(desired),
                    sends=_sends(calendar_call(a) for a in writes))


def _sends(calls: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(call for call in calls if call is not None)


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


async def applied_grants(session: AsyncSession, group_id: int) -> dict[Grant, str]:
    rows = (await session.scalars(
        select(DiscordGrant).where(DiscordGrant.group_id == group_id))).all()
    return {Grant(r.kind, r.target_id, r.discord_user_id): r.state for r in rows}


async def applied_events(session: AsyncSession, group_id: int) -> list[AppliedEvent]:
    rows = (await session.scalars(
        select(CalendarEventRecord).where(CalendarEventRecord.group_id == group_id))).all()
    return [AppliedEvent(r.meeting_id, r.calendar_id, r.event_id, r.etag, r.fingerprint,
                         r.starts_at, r.cancelled, pending=r.state == DeliveryState.PENDING)
            for r in rows]
