"""The rsvps sync: a row for every active member and upcoming meeting, none for people
who left. Membership-driven runs touch only the database; the periodic refresh (the
background lane) also reads attendees' answers from the calendar, one list call per group.
The rows are written through the run's fence: they commit only while it holds its lease.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.clients.ports import CalendarPort
from core.db.models import Meeting, Rsvp, SyncState, SyncType
from core.db.session import SessionFactory
from core.errors import MissingTargetError, NeedsAttentionError
from core.lanes import Lane
from core.syncers.base import SyncContext, SyncResult
from core.syncers.calendar_plan import GROUP_TAG, MEETING_TAG
from core.syncers.rsvp_plan import RsvpPlan, plan_rsvps
from core.syncers.snapshot import GroupSnapshot
from core.syncers.snapshot_loader import load_snapshot, read_snapshot


class RsvpsSyncer:
    sync_type = SyncType.RSVPS

    def __init__(self, session_factory: SessionFactory, calendar: CalendarPort | None) -> None:
        self._sessions = session_factory
        self._calendar = calendar

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        now = context.now
        fence = context.fence_or(self._sessions)
        snapshot: GroupSnapshot | None = None
        answers = None
        if context.lane is Lane.BACKGROUND and self._calendar is not None:
            # The periodic refresh reads attendees' answers first: no transaction is held
            # open across the calendar call.
            async with self._sessions() as session:
                snapshot = await load_snapshot(session, group_id, now)
                calendar_missing = await session.run_sync(_calendar_missing, group_id)
            if not calendar_missing:
                fence.ensure_held()
                answers = await self._read_answers(snapshot, context.lane)

        def write(session: Session) -> tuple[GroupSnapshot, RsvpPlan]:
            # Membership-driven: read, plan and write in one fenced transaction.
            wanted = snapshot if snapshot is not None else read_snapshot(session, group_id, now)
            plan = plan_rsvps(wanted, read_existing_rsvps(session, group_id, now), answers)
            _apply(session, plan, now)
            return wanted, plan

        wanted, plan = await fence.run(write)
        return {
            "meetings": len(wanted.upcoming),
            "added": len(plan.insert),
            "imported": len(plan.update),
            "removed": len(plan.delete),
            "unchanged": plan.unchanged,
            "failed": 0,
        }

    async def _read_answers(
        self, snapshot: GroupSnapshot, lane: Lane
    ) -> dict[int, dict[str, str]] | None:
        if self._calendar is None or not snapshot.calendar_id or not snapshot.upcoming:
            return None
        try:
            events = await self._calendar.list_events(
                snapshot.calendar_id, (GROUP_TAG, str(snapshot.group_id)), lane
            )
        except NeedsAttentionError as exc:
            if exc.status != 404:
                raise
            # The calendar is gone or unshared: the calendar key says so and names what to
            # fix; the answers already imported stay as they are.
            return None
        answers: dict[int, dict[str, str]] = {}
        for event in events:
            tag = event.get("extendedProperties", {}).get("private", {}).get(MEETING_TAG)
            if tag is None or not str(tag).isdigit():
                continue
            answers[int(tag)] = {
                str(a.get("email", "")).lower(): str(a.get("responseStatus", "needsAction"))
                for a in event.get("attendees", [])
            }
        return answers


def _apply(session: Session, plan: RsvpPlan, now: datetime) -> None:
    session.add_all(
        Rsvp(meeting_id=meeting_id, user_id=user_id, response=response, updated_at=now)
        for meeting_id, user_id, response in plan.insert
    )
    for meeting_id, user_id, response in plan.update:
        session.execute(
            update(Rsvp)
            .where(Rsvp.meeting_id == meeting_id, Rsvp.user_id == user_id)
            .values(response=response, updated_at=now)
        )
    for meeting_id, user_id in plan.delete:
        session.execute(
            delete(Rsvp).where(Rsvp.meeting_id == meeting_id, Rsvp.user_id == user_id)
        )


def _calendar_missing(session: Session, group_id: int) -> bool:
    """The group's calendar key is failing on a missing calendar: its retries (at the
    capped interval) are the only calls on that calendar until someone fixes it."""
    kind = session.scalar(
        select(SyncState.error_kind)
        .where(SyncState.sync_type == SyncType.CALENDAR, SyncState.group_id == group_id)
    )
    return bool(kind == MissingTargetError.kind)


async def existing_rsvps(
    session: AsyncSession, group_id: int, now: datetime
) -> dict[tuple[int, int], str]:
    """(meeting, user) → response for the group's upcoming meetings: what the rsvps plan
    compares with (here, and in the calendar changes job that imports answers)."""
    return await session.run_sync(read_existing_rsvps, group_id, now)


def read_existing_rsvps(
    session: Session, group_id: int, now: datetime
) -> dict[tuple[int, int], str]:
    rows = session.execute(
        select(Rsvp.meeting_id, Rsvp.user_id, Rsvp.response)
        .join(Meeting, Meeting.id == Rsvp.meeting_id)
        .where(Meeting.group_id == group_id, Meeting.starts_at > now)
    )
    return {(m, u): r for m, u, r in rows}
