"""Pure: the calendar event each upcoming meeting should have, and what to change.

Event ids are chosen by us and deterministic (base32hex: digits and a-v), so a retried
insert meets a 409 instead of making a duplicate. Past meetings are never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from core.syncers.guard import Proposal
from core.syncers.snapshot import GroupSnapshot, MeetingInfo

GROUP_TAG = "groupsync_group"
MEETING_TAG = "groupsync_meeting"


@dataclass(frozen=True)
class EventSpec:
    meeting_id: int
    calendar_id: str
    event_id: str
    starts_at: datetime
    attendees: tuple[str, ...]  # sorted emails
    body: dict[str, Any]
    fingerprint: str


@dataclass(frozen=True)
class AppliedEvent:
    """A delivery record: an event we created (or are creating: ``pending``)."""

    meeting_id: int
    calendar_id: str
    event_id: str
    etag: str | None
    fingerprint: str | None
    starts_at: datetime | None
    cancelled: bool
    pending: bool = False


@dataclass(frozen=True)
class LiveEvent:
    """The fields of an event as the calendar holds it now, the ones we own."""

    event_id: str
    etag: str | None
    status: str
    start: datetime | None
    end: datetime | None
    summary: str
    description: str
    attendees: frozenset[str]
    raw: dict[str, Any] = field(compare=False, repr=False)  # the event as read


class Step(StrEnum):
    INSERT = "insert"  # no live event: record pending, insert (409: compare, update), settle
    UPDATE = "update"  # live differs from desired (or was cancelled): full update, settle
    SETTLE = "settle"  # live equals desired but the record lags: record only
    CANCEL = "cancel"  # ours, not wanted here any more: delete, close the record
    CLOSE = "close"  # ours, already cancelled or gone live: close the record only


@dataclass(frozen=True)
class CalendarAction:
    step: Step
    spec: EventSpec | None  # INSERT, UPDATE, SETTLE
    record: AppliedEvent | None  # CANCEL, CLOSE (and the record, when any, otherwise)
    live: LiveEvent | None
    found: str
    drift: bool  # found behind our back (not a membership or schedule change)

    @property
    def subject(self) -> str:
        if self.spec is not None:
            return f"event {self.spec.event_id} on {self.spec.calendar_id}"
        assert self.record is not None
        return f"event {self.record.event_id} on {self.record.calendar_id}"


@dataclass(frozen=True)
class CalendarPlan:
    actions: tuple[CalendarAction, ...]
    unchanged: int

    def steps(self, *steps: Step) -> tuple[CalendarAction, ...]:
        return tuple(a for a in self.actions if a.step in steps)

    @property
    def drift(self) -> tuple[CalendarAction, ...]:
        return tuple(a for a in self.actions if a.drift)


def event_id_for(meeting_id: int) -> str:
    return f"gsmeet{meeting_id:010d}"


def event_body(
    snapshot: GroupSnapshot,
    meeting: MeetingInfo,
    responses: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The full event. ``responses`` (email → responseStatus, from our RSVP rows) keeps
    people's answers in a full update, which replaces the attendee list."""
    responses = responses or {}
    end = meeting.starts_at + timedelta(minutes=meeting.duration_minutes)
    emails = sorted(m.email for m in snapshot.members)
    return {
        "id": event_id_for(meeting.meeting_id),
        "summary": f"{snapshot.name} — session {meeting.sequence}",
        "start": {"dateTime": meeting.starts_at.isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": end.isoformat(), "timeZone": "UTC"},
        "attendees": [
            {"email": e, "responseStatus": responses.get(e, "needsAction")} for e in emails
        ],
        "guestsCanModify": False,
        "extendedProperties": {
            "private": {GROUP_TAG: str(snapshot.group_id), MEETING_TAG: str(meeting.meeting_id)}
        },
    }


def fingerprint(body: dict[str, Any]) -> str:
    """What we compare to decide an update: everything we set except people's answers."""
    essential = {**body, "attendees": sorted(a["email"] for a in body["attendees"])}
    return hashlib.sha256(json.dumps(essential, sort_keys=True).encode()).hexdigest()[:32]


def live_answers(event: dict[str, Any] | None) -> dict[str, str]:
    """Attendees' answers as the calendar holds them now (lower-case email → responseStatus)."""
    if not event:
        return {}
    return {
        str(a["email"]).lower(): str(a.get("responseStatus") or "needsAction")
        for a in event.get("attendees", [])
        if isinstance(a, dict) and a.get("email")
    }


def with_live_answers(body: dict[str, Any], event: dict[str, Any] | None) -> dict[str, Any]:
    """``body`` with each attendee's answer taken from the live event where it has one.

    A full update replaces the attendee list, so whatever responseStatus it carries wins:
    sending our (possibly older) copy would reset an "accepted" given in Google since."""
    answers = live_answers(event)
    if not answers:
        return body
    attendees = [
        {**a, "responseStatus": answers.get(str(a["email"]).lower(), a.get("responseStatus"))}
        for a in body.get("attendees", [])
    ]
    return {**body, "attendees": attendees}


def desired_events(
    snapshot: GroupSnapshot, responses: dict[int, dict[str, str]] | None = None
) -> list[EventSpec]:
    if not snapshot.exists or not snapshot.calendar_id:
        return []
    specs = []
    for meeting in snapshot.upcoming:
        body = event_body(snapshot, meeting, (responses or {}).get(meeting.meeting_id))
        specs.append(
            EventSpec(
                meeting_id=meeting.meeting_id,
                calendar_id=snapshot.calendar_id,
                event_id=body["id"],
                starts_at=meeting.starts_at,
                attendees=tuple(a["email"] for a in body["attendees"]),
                body=body,
                fingerprint=fingerprint(body),
            )
        )
    return specs


def live_event(raw: dict[str, Any]) -> LiveEvent:
    attendees = raw.get("attendees", [])
    return LiveEvent(
        event_id=str(raw.get("id", "")),
        etag=raw.get("etag"),
        status=str(raw.get("status", "confirmed")),
        start=_when(raw.get("start")),
        end=_when(raw.get("end")),
        summary=str(raw.get("summary", "")),
        description=str(raw.get("description", "")),
        attendees=frozenset(str(a.get("email", "")).lower() for a in attendees),
        raw=raw,
    )


def differences(spec: EventSpec, live: LiveEvent) -> list[str]:
    """The fields we own whose live value is not the desired one (people's answers aside)."""
    body = spec.body
    wanted = {
        "status": "confirmed",
        "start": _when(body.get("start")),
        "end": _when(body.get("end")),
        "summary": str(body.get("summary", "")),
        "description": str(body.get("description", "")),
        "attendees": frozenset(a.lower() for a in spec.attendees),
    }
    found = {
        "status": live.status,
        "start": live.start,
        "end": live.end,
        "summary": live.summary,
        "description": live.description,
        "attendees": live.attendees,
    }
    return [name for name, value in wanted.items() if found[name] != value]


def plan_calendar(
    desired: list[EventSpec],
    applied: list[AppliedEvent],
    now: datetime,
    live: Mapping[str, LiveEvent] | None = None,
    live_calendar: str | None = None,
) -> CalendarPlan:
    """``live``: our events on ``live_calendar`` (the group's current calendar) by id,
    cancelled ones included; None when there is no calendar to read. Records on any other
    calendar are owed a cancel until that calendar confirms it, so a move never orphans
    the old event."""
    records = {(a.calendar_id, a.event_id): a for a in applied}
    actions: list[CalendarAction] = []
    unchanged = 0
    for spec in desired:
        record = records.pop((spec.calendar_id, spec.event_id), None)
        seen = (live or {}).get(spec.event_id) if spec.calendar_id == live_calendar else None
        action = _decide(spec, record, seen)
        if action is None:
            unchanged += 1
        else:
            actions.append(action)
    for record in records.values():
        if record.cancelled or (record.starts_at is not None and record.starts_at <= now):
            continue  # closed, or a past meeting's event: never touched
        here = live is not None and record.calendar_id == live_calendar
        seen = (live or {}).get(record.event_id) if here else None
        if here and (seen is None or seen.status == "cancelled"):
            actions.append(
                CalendarAction(
                    Step.CLOSE, None, record, seen, "event already cancelled", drift=True
                )
            )
        else:
            actions.append(
                CalendarAction(
                    Step.CANCEL, None, record, seen, "event no longer wanted", drift=False
                )
            )
    return CalendarPlan(tuple(actions), unchanged)


def _decide(
    spec: EventSpec, record: AppliedEvent | None, seen: LiveEvent | None
) -> CalendarAction | None:
    ours_applied = (
        record is not None
        and not record.pending
        and not record.cancelled
        and record.fingerprint == spec.fingerprint
    )
    if seen is None:
        found = "event of ours missing" if ours_applied else "no event yet"
        return CalendarAction(Step.INSERT, spec, record, None, found, drift=ours_applied)
    diffs = differences(spec, seen)
    if record is not None and not record.pending and record.fingerprint is None:
        diffs = diffs or ["re-send requested"]  # a force re-sync: one full update
    if diffs:
        if seen.status == "cancelled":
            found = "event deleted by a person" if ours_applied else "event cancelled"
        else:
            found = "event altered: " + ", ".join(diffs)
        return CalendarAction(Step.UPDATE, spec, record, seen, found, drift=ours_applied)
    if record is None or record.pending or record.cancelled:
        found = "pending write found applied" if record is not None else "event found as desired"
        return CalendarAction(
            Step.SETTLE, spec, record, seen, found, drift=record is not None and record.pending
        )
    if record.etag != seen.etag or record.fingerprint != spec.fingerprint:
        return CalendarAction(Step.SETTLE, spec, record, seen, "record behind", drift=False)
    return None


def _when(value: Any) -> datetime | None:
    """An event time as an aware datetime, whatever offset notation the service used."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        return None
    text = str(value["dateTime"]).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def removal_proposal(
    snapshot: GroupSnapshot, plan: CalendarPlan, live: Mapping[str, LiveEvent] | None,
    fingerprint: str,
) -> Proposal | None:
    """For the deletion guard: the attendees who lose the group (taken off an event, or
    invited to one that is cancelled, and no longer a member), out of everyone invited to
    the group's events now. One person off six events is one removal."""
    staying = {m.email.lower() for m in snapshot.members}
    removed: dict[str, list[str]] = {}  # event id → attendees taken off it
    cancelled: list[str] = []
    for action in plan.actions:
        seen = action.live
        if action.step is Step.CANCEL:
            cancelled.append(action.subject)
        if seen is None or action.step not in (Step.UPDATE, Step.CANCEL):
            continue
        keep = set() if action.spec is None else {a.lower() for a in action.spec.attendees}
        gone = sorted(a for a in seen.attendees - keep if a and a not in staying)
        if gone:
            removed[seen.event_id] = gone
    losing = frozenset(a for gone in removed.values() for a in gone)
    if not losing:
        return None
    invited = {a for event in (live or {}).values() if event.status != "cancelled"
               for a in event.attendees if a}
    return Proposal(
        removed=losing,
        members=len(invited | losing),
        plan={"attendees_removed": removed, "events_cancelled": sorted(cancelled),
              "events_written": len(plan.steps(Step.INSERT, Step.UPDATE))},
        fingerprint=fingerprint,
        additions=len(plan.steps(Step.INSERT)),
    )
