"""What a list of calendar changes means, judged by the calendar sync's own planner: an
answer is imported, a field we own changed by a person owes a repair, our own echo and
anyone else's event owe nothing."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from core.syncers.calendar_changes import judge
from core.syncers.calendar_plan import desired_events
from core.syncers.snapshot import GroupSnapshot, MeetingInfo, Member

CALENDAR = "cohort@group.calendar.google.com"
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def snapshot(group_id: int = 7, calendar_id: str = CALENDAR) -> GroupSnapshot:
    return GroupSnapshot(
        group_id=group_id, exists=True, name="Cohort", calendar_id=calendar_id,
        members=(Member(1, "ann@example.org", None, "Ann"),
                 Member(2, "bob@example.org", None, "Bob")),
        upcoming=(MeetingInfo(70, 1, NOW + timedelta(days=7), 60),))


def as_google_holds_it(group: GroupSnapshot) -> dict[str, Any]:
    """Our event as the calendar returns it after our insert."""
    (spec,) = desired_events(group)
    return {**copy.deepcopy(spec.body), "etag": '"1"', "status": "confirmed",
            "updated": NOW.isoformat(), "organizer": {"email": CALENDAR, "self": True}}


def test_our_own_echo_owes_nothing_and_its_answers_are_imported() -> None:
    event = as_google_holds_it(snapshot())
    event["attendees"][0]["responseStatus"] = "accepted"

    verdict = judge(CALENDAR, [event], {7: snapshot()})

    assert verdict.repairs == {}
    assert verdict.answers == {7: {70: {"ann@example.org": "accepted",
                                        "bob@example.org": "needsAction"}}}


def test_a_person_moving_renaming_or_deleting_our_event_owes_a_repair() -> None:
    moved = as_google_holds_it(snapshot())
    moved["summary"] = "Moved by someone"
    moved["start"] = {"dateTime": (NOW + timedelta(days=8)).isoformat()}
    deleted = {**as_google_holds_it(snapshot()), "status": "cancelled"}

    assert judge(CALENDAR, [moved], {7: snapshot()}).repairs == {
        7: ["event gsmeet0000000070: start, summary"]}
    verdict = judge(CALENDAR, [moved, deleted], {7: snapshot()})  # the later copy wins
    assert verdict.repairs == {7: ["event gsmeet0000000070: deleted by a person"]}
    assert verdict.answers == {}  # a cancelled event's answers are not imported


def test_an_attendee_removed_by_a_person_owes_a_repair() -> None:
    event = as_google_holds_it(snapshot())
    event["attendees"] = event["attendees"][:1]

    assert judge(CALENDAR, [event], {7: snapshot()}).repairs == {
        7: ["event gsmeet0000000070: attendees"]}


def test_events_that_are_not_ours_or_not_wanted_here_owe_nothing() -> None:
    theirs = {"id": "abc", "status": "confirmed", "summary": "Someone's own meeting"}
    ours = as_google_holds_it(snapshot())
    ours["summary"] = "edited"
    elsewhere = snapshot(calendar_id="other@group.calendar.google.com")
    past = GroupSnapshot(group_id=7, exists=True, calendar_id=CALENDAR, upcoming=())

    assert judge(CALENDAR, [theirs], {}).repairs == {}
    assert judge(CALENDAR, [ours], {7: elsewhere}).repairs == {}  # the group moved calendars
    assert judge(CALENDAR, [ours], {7: past}).repairs == {}  # the meeting is past
    assert judge(CALENDAR, [ours], {7: GroupSnapshot(group_id=7, exists=False)}).repairs == {}
