"""The calendar sync: one event per upcoming meeting on the group's calendar, attendees
equal to the active members. Inserts use our deterministic event id; updates are full
updates with If-Match (1 quota unit, where a patch costs 3); sendUpdates="all" so added
people get an invitation and removed people a cancellation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clients.ports import CalendarPort
from core.db.models import (
    CalendarEventRecord,
    Meeting,
    Rsvp,
    RsvpResponse,
    SyncType,
    User,
)
from core.db.session import SessionFactory
from core.errors import NeedsAttentionError
from core.lanes import Lane
from core.syncers.base import Fence, SyncContext, SyncResult
from core.syncers.calendar_plan import (
    AppliedEvent,
    EventSpec,
    desired_events,
    fingerprint,
    live_answers,
    plan_calendar,
    with_live_answers,
)
from core.syncers.snapshot import GroupSnapshot
from core.syncers.snapshot_loader import load_snapshot

SEND_UPDATES = "all"
RESPONSES = frozenset(r.value for r in RsvpResponse)


class CalendarEventsSyncer:
    sync_type = SyncType.CALENDAR

    def __init__(self, session_factory: SessionFactory, calendar: CalendarPort) -> None:
        self._sessions = session_factory
        self._calendar = calendar

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        async with self._sessions() as session:
            snapshot = await load_snapshot(session, group_id, context.now)
            responses = await _known_responses(session, snapshot)
            applied = await _applied(session, group_id)
        desired = desired_events(snapshot, responses)
        plan = plan_calendar(desired, applied, context.now)
        result: SyncResult = {
            "meetings": len(desired),
            "created": 0,
            "updated": 0,
            "unchanged": plan.unchanged,
            "cancelled": 0,
            "failed": 0,
        }
        problems: list[NeedsAttentionError] = []
        fence = context.fence_or(self._sessions)
        # Cancels first: a meeting whose group moved to another calendar has its old event
        # cancelled (and its record closed) before the new one is inserted.
        for current in plan.cancel:
            await self._attempt(
                self._cancel(current, context, fence), "cancelled", result, problems
            )
        for spec in plan.insert:
            await self._attempt(self._insert(spec, context, fence), "created", result, problems)
        for spec, current in plan.update:
            await self._attempt(
                self._update(spec, current, context, fence), "updated", result, problems
            )
        if problems:
            raise problems[0]
        return result

    async def _attempt(
        self, step: Any, counter: str, result: SyncResult, problems: list[NeedsAttentionError]
    ) -> None:
        # Transient errors propagate (the retry redoes the rest); a permanent one for one
        # event is counted and the other events still converge.
        try:
            await step
        except NeedsAttentionError as exc:
            result["failed"] += 1
            problems.append(exc)
        else:
            result[counter] += 1

    async def _insert(self, spec: EventSpec, context: SyncContext, fence: Fence) -> None:
        fence.ensure_held()
        event = await self._calendar.insert_event(
            spec.calendar_id, spec.body, SEND_UPDATES, context.lane
        )
        if _needs_rewrite(event, spec):
            # A retried insert met our own earlier event (409), or a cancelled one: bring it
            # to the desired state with a full update that keeps the answers it holds.
            event = await self._write(spec, event.get("etag"), context.lane, fence, live=event)
        await self._record(fence, spec, event, context.now)

    async def _update(
        self, spec: EventSpec, current: AppliedEvent, context: SyncContext, fence: Fence
    ) -> None:
        event = await self._write(spec, current.etag, context.lane, fence)
        await self._record(fence, spec, event, context.now)

    async def _write(
        self,
        spec: EventSpec,
        etag: str | None,
        lane: Lane,
        fence: Fence,
        live: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        # Every write carries the attendees' answers of the event it was based on: with
        # If-Match, an unchanged etag means the live answers are the ones we last wrote
        # (and imported), and a changed one gives 412 and a re-read below.
        body = {**with_live_answers(spec.body, live), "status": "confirmed"}
        fence.ensure_held()
        event = await self._calendar.update_event(
            spec.calendar_id, spec.event_id, body, etag, SEND_UPDATES, lane
        )
        if event is not None:
            return event
        # 412: someone changed the event since we read it (a person answered, say).
        # Re-read and re-apply once, carrying the answers it holds now.
        fence.ensure_held()
        latest = await self._calendar.get_event(spec.calendar_id, spec.event_id, lane)
        fence.ensure_held()
        if latest is None:
            return await self._calendar.insert_event(
                spec.calendar_id, spec.body, SEND_UPDATES, lane
            )
        body = {**with_live_answers(spec.body, latest), "status": "confirmed"}
        event = await self._calendar.update_event(
            spec.calendar_id, spec.event_id, body, latest.get("etag"), SEND_UPDATES, lane
        )
        if event is None:
            raise NeedsAttentionError(
                f"event {spec.event_id} keeps changing under us (412 twice)", service="calendar"
            )
        return event

    async def _cancel(self, current: AppliedEvent, context: SyncContext, fence: Fence) -> None:
        fence.ensure_held()
        await self._calendar.delete_event(
            current.calendar_id, current.event_id, SEND_UPDATES, context.lane
        )
        async with fence.transaction() as session:
            await session.execute(
                update(CalendarEventRecord)
                .where(
                    CalendarEventRecord.calendar_id == current.calendar_id,
                    CalendarEventRecord.event_id == current.event_id,
                )
                .values(cancelled=True, updated_at=context.now)
            )
            await session.execute(
                update(Meeting)
                .where(Meeting.id == current.meeting_id)
                .values(calendar_event_id=None)
            )

    async def _record(
        self, fence: Fence, spec: EventSpec, event: dict[str, Any], now: datetime
    ) -> None:
        etag = event.get("etag")
        async with fence.transaction() as session:
            members = {email.lower() for email in spec.attendees}
            answers = {e: a for e, a in live_answers(event).items() if e in members}
            await _import_answers(session, spec.meeting_id, answers, now)
            record = await session.scalar(
                select(CalendarEventRecord).where(CalendarEventRecord.meeting_id == spec.meeting_id)
            )
            if record is None:
                record = CalendarEventRecord(meeting_id=spec.meeting_id)
                session.add(record)
            record.group_id = int(spec.body["extendedProperties"]["private"]["groupsync_group"])
            record.calendar_id = spec.calendar_id
            record.event_id = spec.event_id
            record.etag = etag
            record.fingerprint = spec.fingerprint
            record.starts_at = spec.starts_at
            record.attendees = list(spec.attendees)
            record.cancelled = False
            record.updated_at = now
            await session.execute(
                update(Meeting)
                .where(Meeting.id == spec.meeting_id)
                .values(calendar_event_id=spec.event_id)
            )


def _needs_rewrite(event: dict[str, Any], spec: EventSpec) -> bool:
    if event.get("status") == "cancelled":
        return True
    shaped = {
        **spec.body,
        "attendees": [{"email": a.get("email", "")} for a in event.get("attendees", [])],
    }
    return fingerprint(shaped) != spec.fingerprint


async def _applied(session: AsyncSession, group_id: int) -> list[AppliedEvent]:
    rows = (
        await session.execute(
            select(CalendarEventRecord).where(CalendarEventRecord.group_id == group_id)
        )
    ).scalars()
    return [
        AppliedEvent(
            r.meeting_id, r.calendar_id, r.event_id, r.etag, r.fingerprint, r.starts_at, r.cancelled
        )
        for r in rows
    ]


async def _import_answers(
    session: AsyncSession, meeting_id: int, answers: dict[str, str], now: datetime
) -> None:
    """The answers the calendar holds for this meeting become our RSVPs (they are the
    people's own words, newer than any copy we kept). A new row is added only for a real
    answer; rows for plain members are the rsvps sync's job."""
    if not answers:
        return
    users = (
        await session.execute(
            select(User.id, User.email).where(func.lower(User.email).in_(list(answers)))
        )
    ).all()
    rows = await session.execute(
        select(Rsvp.user_id, Rsvp.response).where(Rsvp.meeting_id == meeting_id)
    )
    existing: dict[int, str] = {row.user_id: row.response for row in rows}
    for user_id, email in users:
        answer = answers[email.lower()]
        if answer not in RESPONSES:
            continue
        if user_id in existing:
            if existing[user_id] != answer:
                await session.execute(
                    update(Rsvp)
                    .where(Rsvp.meeting_id == meeting_id, Rsvp.user_id == user_id)
                    .values(response=answer, updated_at=now)
                )
        elif answer != RsvpResponse.NEEDS_ACTION:
            session.add(Rsvp(meeting_id=meeting_id, user_id=user_id, response=answer,
                             updated_at=now))


async def _known_responses(
    session: AsyncSession, snapshot: GroupSnapshot
) -> dict[int, dict[str, str]]:
    """Our stored RSVP answers, so a full update does not reset people's responses."""
    meeting_ids = [m.meeting_id for m in snapshot.upcoming]
    if not meeting_ids:
        return {}
    rows = await session.execute(
        select(Rsvp.meeting_id, User.email, Rsvp.response)
        .join(User, User.id == Rsvp.user_id)
        .where(Rsvp.meeting_id.in_(meeting_ids))
    )
    answers: dict[int, dict[str, str]] = {}
    for meeting_id, email, response in rows:
        answers.setdefault(meeting_id, {})[email] = response
    return answers
