"""The calendar sync: one event per upcoming meeting on the group's calendar, attendees
equal to the active members.

Each run lists our events on the group's calendar (one read, deleted ones included) and
``calendar_plan`` compares their live fields with the desired ones. Inserts use our
deterministic event id; updates are full updates with If-Match (1 quota unit, where a
patch costs 3) carrying attendees' live answers; sendUpdates="all" so added people get
an invitation and removed people a cancellation. Every write is recorded ``pending``
before it is sent and settled after (intent before effect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from core.clients.ports import CalendarPort
from core.db.models import (
    CalendarEventRecord,
    DeliveryState,
    Meeting,
    Rsvp,
    RsvpResponse,
    SyncType,
    User,
)
from core.db.session import SessionFactory
from core.errors import MissingTargetError, NeedsAttentionError
from core.lanes import Lane
from core.syncers.base import Fence, SyncContext, SyncResult
from core.syncers.calendar_plan import (
    GROUP_TAG,
    AppliedEvent,
    CalendarAction,
    CalendarPlan,
    EventSpec,
    LiveEvent,
    Step,
    desired_events,
    differences,
    live_answers,
    live_event,
    plan_calendar,
    removal_proposal,
    with_live_answers,
)
from core.syncers.guard import Proposal, membership_fingerprint
from core.syncers.outcomes import Outcome, Wording
from core.syncers.planned import PlannedSyncer, Send
from core.syncers.snapshot import GroupSnapshot
from core.syncers.snapshot_loader import load_snapshot
from core.syncers.view import LiveView, calendar_view

SERVICE = "calendar"
SEND_UPDATES = "all"
# Writes per batch: their intents are recorded in one transaction, their outcomes in one.
BATCH = 25
RESPONSES = frozenset(r.value for r in RsvpResponse)
# Per step: the result counter it adds one to, and what it did, for the drift lines.
WORDING = Wording(SERVICE, {
    Step.INSERT: ("created", "re-created"),
    Step.UPDATE: ("updated", "restored"),
    Step.SETTLE: ("unchanged", "record settled"),
    Step.CANCEL: ("cancelled", "cancelled"),
    Step.CLOSE: ("cancelled", "record closed"),
})


@dataclass(frozen=True)
class _Reading:
    snapshot: GroupSnapshot
    desired: list[EventSpec]
    plan: CalendarPlan
    live: dict[str, LiveEvent] | None


class CalendarEventsSyncer(PlannedSyncer[_Reading, CalendarAction]):
    sync_type = SyncType.CALENDAR

    wording = WORDING
    batch = BATCH

    def __init__(self, session_factory: SessionFactory, calendar: CalendarPort) -> None:
        super().__init__(session_factory)
        self._calendar = calendar

    def _counts(self, reading: _Reading) -> SyncResult:
        return {
            "meetings": len(reading.desired),
            "created": 0,
            "updated": 0,
            "unchanged": reading.plan.unchanged,
            "cancelled": 0,
            "failed": 0,
            "repaired": 0,
        }

    def _proposal(self, reading: _Reading) -> Proposal | None:
        return removal_proposal(reading.snapshot, reading.plan, reading.live,
                                membership_fingerprint(reading.snapshot))

    def _view(self, reading: _Reading) -> LiveView:
        return calendar_view(reading.desired, reading.plan, reading.live)

    def _phases(
        self, reading: _Reading, group_id: int, context: SyncContext, fence: Fence
    ) -> list[tuple[Sequence[CalendarAction], Send[CalendarAction]]]:
        """Cancels first: a meeting whose group moved to another calendar has its old
        event cancelled before the new one is inserted. A cancel the old calendar refuses
        leaves its record owed; the new event is still made."""
        plan = reading.plan
        return [
            (plan.steps(Step.CANCEL, Step.CLOSE),
             lambda batch: self._cancel_batch(batch, context, fence)),
            (plan.steps(Step.INSERT, Step.UPDATE, Step.SETTLE),
             lambda batch: self._write_batch(batch, group_id, context, fence)),
        ]

    # ---- reading ---------------------------------------------------------------------------
    async def _read(self, group_id: int, context: SyncContext, fence: Fence) -> _Reading:
        async with self._sessions() as session:
            snapshot = await load_snapshot(session, group_id, context.now)
            responses = await _known_responses(session, snapshot)
            applied = await _applied(session, group_id)
        desired = desired_events(snapshot, responses)
        live: dict[str, LiveEvent] | None = None
        if snapshot.exists and snapshot.calendar_id:
            fence.ensure_held()
            try:
                events = await self._calendar.list_events(
                    snapshot.calendar_id, (GROUP_TAG, str(group_id)), context.lane,
                    show_deleted=True,
                )
            except NeedsAttentionError as exc:
                missing = missing_calendar(snapshot.calendar_id, exc)
                if missing is None:
                    raise
                raise missing from exc
            live = {e.event_id: e for e in map(live_event, events)}
        plan = plan_calendar(desired, applied, context.now, live, snapshot.calendar_id)
        return _Reading(snapshot, desired, plan, live)

    # ---- applying --------------------------------------------------------------------------
    async def _write_batch(
        self, actions: Sequence[CalendarAction], group_id: int, context: SyncContext,
        fence: Fence,
    ) -> list[Outcome[CalendarAction]]:
        """Intents (pending records; settled ones for events found right) in one
        transaction, the writes in flight together, their outcomes in one transaction."""
        writes = [a for a in actions if a.step is not Step.SETTLE]
        async with fence.transaction() as session:
            for action in actions:
                settled = action.step is Step.SETTLE
                found = action.live.raw if settled and action.live else {}
                state = DeliveryState.SETTLED if settled else DeliveryState.PENDING
                await _record(session, group_id, _spec(action), found, state, context.now)
        answers = await asyncio.gather(
            *(self._send(a, context.lane, fence) for a in writes), return_exceptions=True
        )
        done = [(a, e) for a, e in zip(writes, answers, strict=True) if isinstance(e, dict)]
        if done:
            async with fence.transaction() as session:
                for action, event in done:
                    await _record(session, group_id, _spec(action), event,
                                  DeliveryState.SETTLED, context.now)
        errors = iter(e if isinstance(e, BaseException) else None for e in answers)
        # (CalendarAction holds dicts, so it cannot key a mapping: outcomes go by position.)
        return [(a, None if a.step is Step.SETTLE else next(errors)) for a in actions]

    async def _send(self, action: CalendarAction, lane: Lane, fence: Fence) -> dict[str, Any]:
        # Writes go to the group's own calendar only: one shared read-only is a missing
        # target (a 404 here may be one event's, so only the list above reads it as the
        # calendar's).
        try:
            return await self._send_one(action, lane, fence)
        except NeedsAttentionError as exc:
            missing = missing_calendar(_spec(action).calendar_id, exc, reading_list=False)
            if missing is None:
                raise
            raise missing from exc

    async def _send_one(
        self, action: CalendarAction, lane: Lane, fence: Fence
    ) -> dict[str, Any]:
        spec = _spec(action)
        if action.step is Step.INSERT:
            return await self._insert(spec, lane, fence)
        live = action.live
        return await self._write(spec, live, live.etag if live else None, lane, fence)

    async def _insert(self, spec: EventSpec, lane: Lane, fence: Fence) -> dict[str, Any]:
        fence.ensure_held()
        event = await self._calendar.insert_event(spec.calendar_id, spec.body, SEND_UPDATES, lane)
        seen = live_event(event)
        if differences(spec, seen):
            # A 409: our own earlier event (a retried insert, or one a person edited or
            # deleted). Bring it to the desired state with a full update.
            return await self._write(spec, seen, event.get("etag"), lane, fence)
        return event

    async def _write(
        self, spec: EventSpec, live: LiveEvent | None, etag: str | None, lane: Lane, fence: Fence
    ) -> dict[str, Any]:
        # Every write carries the attendees' answers of the event it was based on: with
        # If-Match, a changed event gives 412 and a re-read below.
        body = {**with_live_answers(spec.body, live.raw if live else None), "status": "confirmed"}
        fence.ensure_held()
        event = await self._calendar.update_event(
            spec.calendar_id, spec.event_id, body, etag, SEND_UPDATES, lane
        )
        if event is not None:
            return event
        # 412: someone changed the event since we read it. Re-read, re-apply once.
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
                f"event {spec.event_id} keeps changing under us (412 twice)", service=SERVICE
            )
        return event

    async def _cancel_batch(
        self, actions: Sequence[CalendarAction], context: SyncContext, fence: Fence
    ) -> list[Outcome[CalendarAction]]:
        """Records marked pending, the cancels in flight together, the confirmed ones
        closed; a CLOSE (nothing left to cancel) is only closed. (The records name their
        own calendars and meetings: no group id.)"""
        calls = [_record_of(a) for a in actions if a.step is Step.CANCEL]
        if calls:
            async with fence.transaction() as session:
                for record in calls:
                    await session.execute(
                        update(CalendarEventRecord)
                        .where(_record_where(record.calendar_id, record.event_id))
                        .values(state=DeliveryState.PENDING.value, updated_at=context.now)
                    )
        answers = iter(await asyncio.gather(
            *(self._delete(record, context.lane, fence) for record in calls),
            return_exceptions=True,
        ))
        outcomes: list[Outcome[CalendarAction]] = [
            (a, next(answers) if a.step is Step.CANCEL else None) for a in actions
        ]
        closed = [_record_of(a) for a, error in outcomes if error is None]
        if closed:
            async with fence.transaction() as session:
                for record in closed:
                    await _close(session, record, context.now)
        return outcomes

    async def _delete(self, record: AppliedEvent, lane: Lane, fence: Fence) -> None:
        fence.ensure_held()
        await self._calendar.delete_event(record.calendar_id, record.event_id, SEND_UPDATES, lane)


def _spec(action: CalendarAction) -> EventSpec:
    assert action.spec is not None
    return action.spec


def _record_of(action: CalendarAction) -> AppliedEvent:
    assert action.record is not None
    return action.record


def _record_where(calendar_id: str, event_id: str) -> ColumnElement[bool]:
    return and_(
        CalendarEventRecord.calendar_id == calendar_id,
        CalendarEventRecord.event_id == event_id,
    )


async def _close(session: AsyncSession, record: AppliedEvent, now: datetime) -> None:
    await session.execute(
        update(CalendarEventRecord)
        .where(_record_where(record.calendar_id, record.event_id))
        .values(cancelled=True, state=DeliveryState.SETTLED.value, updated_at=now)
    )
    # The meeting keeps pointing at an event only while one of ours is still open.
    still_open = await session.scalar(
        select(CalendarEventRecord.event_id).where(
            CalendarEventRecord.meeting_id == record.meeting_id,
            CalendarEventRecord.cancelled.is_(False),
        )
    )
    if still_open is None:
        await session.execute(
            update(Meeting).where(Meeting.id == record.meeting_id).values(calendar_event_id=None)
        )


async def _record(
    session: AsyncSession,
    group_id: int,
    spec: EventSpec,
    event: dict[str, Any],
    state: DeliveryState,
    now: datetime,
) -> None:
    """``event``: the live event the write returned (or was found as); its attendees'
    answers become our RSVPs."""
    etag = event.get("etag")
    members = {email.lower() for email in spec.attendees}
    answers = {e: a for e, a in live_answers(event).items() if e in members}
    await _import_answers(session, spec.meeting_id, answers, now)
    record = await session.scalar(
        select(CalendarEventRecord).where(_record_where(spec.calendar_id, spec.event_id))
    )
    if record is None:
        record = CalendarEventRecord(
            calendar_id=spec.calendar_id, event_id=spec.event_id, etag=etag
        )
        session.add(record)
    record.group_id = group_id
    record.meeting_id = spec.meeting_id
    record.starts_at = spec.starts_at
    record.attendees = list(spec.attendees)
    record.cancelled = False
    record.state = state.value
    record.updated_at = now
    if state is DeliveryState.SETTLED:
        record.etag = etag
        record.fingerprint = spec.fingerprint
    await session.execute(
        update(Meeting)
        .where(Meeting.id == spec.meeting_id)
        .values(calendar_event_id=spec.event_id)
    )


async def _applied(session: AsyncSession, group_id: int) -> list[AppliedEvent]:
    rows = (
        await session.execute(
            select(CalendarEventRecord).where(CalendarEventRecord.group_id == group_id)
        )
    ).scalars()
    return [
        AppliedEvent(
            r.meeting_id,
            r.calendar_id,
            r.event_id,
            r.etag,
            r.fingerprint,
            r.starts_at,
            r.cancelled,
            pending=r.state == DeliveryState.PENDING.value,
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
            session.add(
                Rsvp(meeting_id=meeting_id, user_id=user_id, response=answer, updated_at=now)
            )


async def _known_responses(
    session: AsyncSession, snapshot: GroupSnapshot
) -> dict[int, dict[str, str]]:
    """Our stored RSVP answers, the fallback when no live answer was read."""
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


CALENDAR_COLUMN = "groups.calendar_id"


def missing_calendar(
    calendar_id: str, exc: NeedsAttentionError, *, reading_list: bool = True
) -> MissingTargetError | None:
    """The group's calendar as a missing target, if that is what Google's answer means: a
    404 to listing its events (Google answers a calendar that was deleted or is not shared
    with the caller alike: notFound), or a 403 requiredAccessLevel to a write (shared
    read-only). None for any other answer."""
    google = f"Google: {exc.status} {exc}"
    if reading_list and exc.status == 404:
        return MissingTargetError(
            f"calendar {calendar_id} does not exist or is not shared with groupsync's Google "
            f"account ({google}): share it with that account (make changes to events), or "
            f"set {CALENDAR_COLUMN} to a calendar that is",
            service=SERVICE, target="calendar", target_id=calendar_id,
            found="calendar missing (deleted or not shared)", setting=CALENDAR_COLUMN,
            status=exc.status, code=exc.code,
        )
    if exc.status == 403 and exc.code == "requiredAccessLevel":
        return MissingTargetError(
            f"calendar {calendar_id} is shared with groupsync's Google account read-only "
            f"({google}): let that account make changes to events, or set "
            f"{CALENDAR_COLUMN} to a calendar it may write",
            service=SERVICE, target="calendar", target_id=calendar_id,
            found="calendar shared read-only", setting=CALENDAR_COLUMN,
            status=exc.status, code=exc.code,
        )
    return None
