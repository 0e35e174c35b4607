"""Pure: what a calendar's changes mean for groupsync (Calendar incremental sync).

Google's incremental list (``events.list`` with the stored ``syncToken``) returns every
event of the calendar changed since the token, people's own events among them, deleted
ones as ``cancelled``. Of the events that are ours (tagged with group and meeting) two
things matter:

- the attendees' answers, imported as RSVPs: this list is how answers given in Google
  reach the database, instead of a full read of every group's events;
- whether a field we own no longer has its desired value (a person edited, moved or
  deleted the event): then the group's calendar key is owed, and its sync puts it right.

Our own writes come back as changes too; they already match the desired state and owe
nothing. The desired state is computed by the calendar sync's own planner
(``desired_events`` / ``differences``), so this can never want what the sync does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.syncers.calendar_plan import (
    GROUP_TAG,
    MEETING_TAG,
    desired_events,
    differences,
    live_answers,
    live_event,
)
from core.syncers.snapshot import GroupSnapshot


@dataclass(frozen=True)
class Ours:
    group_id: int
    meeting_id: int


def ours(event: Mapping[str, Any]) -> Ours | None:
    """The group and meeting an event of ours was made for; None for anyone else's."""
    tags = (event.get("extendedProperties") or {}).get("private") or {}
    group, meeting = str(tags.get(GROUP_TAG, "")), str(tags.get(MEETING_TAG, ""))
    if not (group.isdigit() and meeting.isdigit()):
        return None
    return Ours(int(group), int(meeting))


def groups_of(events: Iterable[Mapping[str, Any]]) -> set[int]:
    return {tag.group_id for tag in map(ours, events) if tag is not None}


@dataclass(frozen=True)
class Verdict:
    # group → meeting → email → responseStatus, for the upcoming meetings' events
    answers: dict[int, dict[int, dict[str, str]]] = field(default_factory=dict)
    # group → what a person changed, one phrase an event ("event gsmeet…: start, summary")
    repairs: dict[int, list[str]] = field(default_factory=dict)


def judge(
    calendar_id: str,
    events: Iterable[dict[str, Any]],
    snapshots: Mapping[int, GroupSnapshot],
) -> Verdict:
    """``events``: the calendar's changes, oldest first (a later copy of an event wins).
    ``snapshots``: the groups the events are tagged with, as the database has them now;
    a group absent, archived or on another calendar owes nothing here."""
    latest: dict[str, dict[str, Any]] = {}
    for event in events:
        if ours(event) is not None:
            latest[str(event.get("id", ""))] = event
    verdict = Verdict()
    wanted = {
        group_id: {spec.event_id: spec for spec in desired_events(snapshot)}
        for group_id, snapshot in snapshots.items()
        if snapshot.exists and snapshot.calendar_id == calendar_id
    }
    for event_id, event in latest.items():
        tag = ours(event)
        assert tag is not None
        spec = wanted.get(tag.group_id, {}).get(event_id)
        if spec is None:
            continue  # a past meeting, or one no longer wanted: the sync's own business
        live = live_event(event)
        changed = differences(spec, live)
        if changed:
            what = "deleted by a person" if live.status == "cancelled" else ", ".join(changed)
            verdict.repairs.setdefault(tag.group_id, []).append(f"event {event_id}: {what}")
        if live.status != "cancelled":
            verdict.answers.setdefault(tag.group_id, {})[spec.meeting_id] = live_answers(event)
    return verdict
