"""Calendar incremental sync: every CALENDAR_CHANGES_SECONDS the active daemon lists what
changed on each followed calendar since its stored ``syncToken`` (the background lane,
within its share of the quota), imports the answers as RSVPs and owes a group's calendar
key a run when a person edited, moved or deleted an event of ours (DESIGN §4).

This replaces a full read of every group's events each refresh: a quiet calendar costs
one list call that returns nothing. ``410 Gone`` (the token expired) means one full list
and a new token. The token is stored in the transaction that applies what its list
returned, so a failure anywhere leaves the old token and the next tick lists again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import metrics
from core.clients.ports import CalendarChanges, CalendarPort
from core.db.models import CalendarSyncToken, Group, Rsvp, SyncState, SyncType
from core.engine.health.outage import is_database_unavailable
from core.engine.loops.live_changes import not_already_owed, run_repairs
from core.engine.running.outbox import mark_owed
from core.engine.running.state import SyncKey
from core.errors import CredentialsRejectedError, MissingTargetError, SyncError
from core.lanes import Lane
from core.observability import get_logger
from core.syncers.calendar_changes import Verdict, groups_of, judge
from core.syncers.rsvp_plan import plan_rsvps
from core.syncers.rsvps import existing_rsvps
from core.syncers.snapshot import GroupSnapshot
from core.syncers.snapshot_loader import load_snapshot

if TYPE_CHECKING:
    from core.engine.running.context import Runtime

log = get_logger("groupsync.calendar_changes")
CALENDAR_CHANGES_JOB = "calendar_changes"


async def followed_calendars(session: AsyncSession) -> dict[str, int]:
    """Calendars of active groups (each with the first group on it, the key a refusal is
    told under), less those a group's calendar key found missing (its capped retries are
    the only calls on them until someone fixes the setting)."""
    rows = await session.execute(
        select(Group.calendar_id, func.min(Group.id))
        .where(Group.archived.is_(False), Group.calendar_id.is_not(None))
        .group_by(Group.calendar_id))
    missing = set(await session.scalars(
        select(Group.calendar_id)
        .join(SyncState, (SyncState.group_id == Group.id)
              & (SyncState.sync_type == SyncType.CALENDAR))
        .where(SyncState.error_kind == MissingTargetError.kind)))
    return {c: g for c, g in sorted(rows.all()) if c and c not in missing}


async def follow_calendar(rt: Runtime, calendar: CalendarPort, calendar_id: str) -> Verdict:
    """One incremental list of ``calendar_id`` applied; the groups owed a repair are run."""
    async with rt.session_factory() as session:
        token = await session.scalar(
            select(CalendarSyncToken.sync_token)
            .where(CalendarSyncToken.calendar_id == calendar_id))
    changes = await calendar.list_changes(calendar_id, token, Lane.BACKGROUND)
    if changes is None:  # 410: the token expired, start again from a full list
        log.info("calendar_full_sync", calendar_id=calendar_id, why="sync token expired")
        changes = await calendar.list_changes(calendar_id, None, Lane.BACKGROUND)
        if changes is None:
            return Verdict()
    now = rt.clock.now()
    async with rt.session_factory() as session, session.begin():
        snapshots = {group_id: await load_snapshot(session, group_id, now)
                     for group_id in sorted(groups_of(changes.events))}
        verdict = judge(calendar_id, changes.events, snapshots)
        imported = await _import_answers(session, snapshots, verdict, now)
        repairs = await not_already_owed(session, SyncType.CALENDAR, verdict.repairs)
        await mark_owed(session, repairs, now, [SyncType.CALENDAR])
        await _store_token(session, calendar_id, changes, now)
    metrics.CALENDAR_LISTED.labels(calendar_id=calendar_id).set(now.timestamp())
    if changes.events:
        log.info("calendar_changes_applied", calendar_id=calendar_id,
                 changes=len(changes.events), answers_imported=imported,
                 repairs=len(repairs), full=token is None)
    await run_repairs(rt, SyncType.CALENDAR, {g: verdict.repairs[g] for g in repairs},
                      "calendar_live_change", calendar_id=calendar_id)
    return verdict


async def follow_calendars(rt: Runtime) -> int:
    """One pass over every followed calendar; returns how many were listed. A service
    error on one calendar is logged and leaves its token: the next pass tries again."""
    calendar = rt.client_board.calendar
    if calendar is None or await rt.pauses.is_paused(SyncType.CALENDAR):
        return 0
    if await rt.credentials.parked(SyncType.CALENDAR) is not None:
        return 0  # its probe finds out when the credentials work again
    async with rt.session_factory() as session:
        calendars = await followed_calendars(session)
    listed = 0
    for calendar_id, group_id in calendars.items():
        try:
            async with rt.calendar_wakes.lock(calendar_id):  # not while a push wake lists it
                await follow_calendar(rt, calendar, calendar_id)
            listed += 1
        except CredentialsRejectedError as exc:
            # Every calendar would get the same answer: park the service as a run does.
            await rt.credentials.rejected(exc, SyncKey(SyncType.CALENDAR, group_id),
                                          rt.clock.now())
            break
        except SyncError as exc:
            log.warning("calendar_changes_failed", calendar_id=calendar_id,
                        error=str(exc), kind=exc.kind)
    return listed


async def calendar_changes_job(rt: Runtime) -> None:
    """Bound to its runtime when scheduled: no process-wide handle is looked up."""
    try:
        await follow_calendars(rt)
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        rt.outage.failed(exc, where=CALENDAR_CHANGES_JOB)  # the next tick lists again


async def _import_answers(
    session: AsyncSession, snapshots: dict[int, GroupSnapshot], verdict: Verdict,
    now: datetime,
) -> int:
    """Answers become RSVP rows (the rsvps plan decides, as in its own sync); removing
    the rows of people who left stays the rsvps key's work."""
    imported = 0
    for group_id, answers in verdict.answers.items():
        existing = await existing_rsvps(session, group_id, now)
        plan = plan_rsvps(snapshots[group_id], existing, answers)
        for meeting_id, user_id, response in plan.insert:
            session.add(Rsvp(meeting_id=meeting_id, user_id=user_id, response=response,
                             updated_at=now))
        for meeting_id, user_id, response in plan.update:
            await session.execute(
                update(Rsvp).where(Rsvp.meeting_id == meeting_id, Rsvp.user_id == user_id)
                .values(response=response, updated_at=now))
        imported += len(plan.update)
    return imported


async def _store_token(
    session: AsyncSession, calendar_id: str, changes: CalendarChanges, now: datetime
) -> None:
    if changes.next_sync_token is None:
        return
    row = await session.get(CalendarSyncToken, calendar_id)
    if row is None:
        session.add(CalendarSyncToken(calendar_id=calendar_id,
                                      sync_token=changes.next_sync_token, synced_at=now))
    else:
        row.sync_token, row.synced_at = changes.next_sync_token, now
