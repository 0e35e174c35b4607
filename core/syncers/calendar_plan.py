"""Pure: the calendar event each upcoming meeting should have, and what to change.

Event ids are chosen by us and deterministic (base32hex: digits and a-v), so a retried
insert meets a 409 instead of making a duplicate. Past meetings are never touched.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    meeting_id: int
    calendar_id: str
    event_id: str
    etag: str | None
    fingerprint: str | None
    starts_at: datetime | None
    cancelled: bool


@dataclass(frozen=True)
class CalendarPlan:
    insert: tuple[EventSpec, ...]
    update: tuple[tuple[EventSpec, AppliedEvent], ...]
    cancel: tuple[AppliedEvent, ...]
    unchanged: int


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


def plan_calendar(
    desired: list[EventSpec], applied: list[AppliedEvent], now: datetime
) -> CalendarPlan:
    applied_by_meeting = {a.meeting_id: a for a in applied}
    wanted = {spec.meeting_id for spec in desired}
    insert, update, unchanged = [], [], 0
    for spec in desired:
        current = applied_by_meeting.get(spec.meeting_id)
        if current is None or current.cancelled or current.calendar_id != spec.calendar_id:
            insert.append(spec)
        elif current.fingerprint != spec.fingerprint:
            update.append((spec, current))
        else:
            unchanged += 1
    cancel = [
        a
        for a in applied
        if not a.cancelled
        and (a.meeting_id not in wanted or _moved_calendar(a, desired))
        and (a.starts_at is None or a.starts_at > now)
    ]
    return CalendarPlan(tuple(insert), tuple(update), tuple(cancel), unchanged)


def _moved_calendar(applied: AppliedEvent, desired: list[EventSpec]) -> bool:
    return any(
        s.meeting_id == applied.meeting_id and s.calendar_id != applied.calendar_id for s in desired
    )
