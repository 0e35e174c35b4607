"""The pure halves of the syncers: desired state and the diff, as tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.reminders.plan import (
    ExistingReminder,
    ReminderKey,
    desired_reminders,
    nonce_for,
    plan_reminders,
)
from core.syncers.calendar_plan import (
    AppliedEvent,
    CalendarPlan,
    LiveEvent,
    Step,
    desired_events,
    event_id_for,
    live_event,
    plan_calendar,
)
from core.syncers.rsvp_plan import plan_rsvps
from core.syncers.snapshot import GroupSnapshot, MeetingInfo, Member

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ANN = Member(1, "ann@example.org", "11", "Ann")
BOB = Member(2, "bob@example.org", "22", "Bob")
NOID = Member(3, "cy@example.org", None, "Cy")
SOON = MeetingInfo(10, 1, NOW + timedelta(days=2), 60)
LATER = MeetingInfo(11, 2, NOW + timedelta(days=9), 60)


def group(*members: Member, **fields: object) -> GroupSnapshot:
    base: dict[str, object] = {
        "group_id": 7,
        "exists": True,
        "name": "Cohort",
        "guild_id": "900",
        "text_channel_id": "500",
        "voice_channel_id": "700",
        "calendar_id": "cal7",
        "members": members,
        "upcoming": (SOON, LATER),
    }
    return GroupSnapshot(**{**base, **fields})  # type: ignore[arg-type]


def applied_for(snapshot: GroupSnapshot, **changes: object) -> list[AppliedEvent]:
    return [
        AppliedEvent(
            **{  # type: ignore[arg-type]
                "meeting_id": spec.meeting_id,
                "calendar_id": spec.calendar_id,
                "event_id": spec.event_id,
                "etag": '"1"',
                "fingerprint": spec.fingerprint,
                "starts_at": spec.starts_at,
                "cancelled": False,
                **changes,
            }
        )
        for spec in desired_events(snapshot)
    ]


def live_for(snapshot: GroupSnapshot, **changes: object) -> dict[str, LiveEvent]:
    """The events as the calendar holds them after a sync of ``snapshot``."""
    events = {}
    for spec in desired_events(snapshot):
        raw = {**spec.body, "etag": '"1"', "status": "confirmed", **changes}
        events[spec.event_id] = live_event(raw)
    return events


def plan(snapshot: GroupSnapshot, applied: list[AppliedEvent],
         live: dict[str, LiveEvent] | None, desired: GroupSnapshot | None = None) -> CalendarPlan:
    return plan_calendar(desired_events(desired or snapshot), applied, NOW, live, "cal7")


def test_calendar_plan_inserts_every_upcoming_meeting_from_empty() -> None:
    result = plan(group(ANN), [], {})
    assert [a.spec.event_id for a in result.steps(Step.INSERT) if a.spec] == [
        event_id_for(10), event_id_for(11)]
    assert set(event_id_for(10)) <= set("0123456789abcdefghijklmnopqrstuv")


def test_calendar_plan_is_empty_when_converged() -> None:
    snapshot = group(ANN)
    result = plan(snapshot, applied_for(snapshot), live_for(snapshot))
    assert (result.actions, result.unchanged) == ((), 2)


def test_calendar_plan_updates_when_attendees_change_but_not_for_answers() -> None:
    before = group(ANN)
    changed = plan(before, applied_for(before), live_for(before), desired=group(ANN, BOB))
    assert [(a.step, a.drift) for a in changed.actions] == [(Step.UPDATE, False)] * 2
    answered = plan_calendar(desired_events(before, {10: {"ann@example.org": "accepted"}}),
                             applied_for(before), NOW, live_for(before), "cal7")
    assert answered.unchanged == 2


@pytest.mark.parametrize(
    ("changes", "found"),
    [
        ({"summary": "Renamed"}, "event altered: summary"),
        ({"description": "a note"}, "event altered: description"),
        ({"attendees": []}, "event altered: attendees"),
        ({"start": {"dateTime": "2026-12-01T10:00:00Z"}}, "event altered: start"),
        ({"status": "cancelled"}, "event deleted by a person"),
    ],
)
def test_calendar_plan_restores_live_fields_changed_behind_our_back(
    changes: dict[str, object], found: str
) -> None:
    snapshot = group(ANN, upcoming=(SOON,))
    result = plan(snapshot, applied_for(snapshot), live_for(snapshot, **changes))
    assert [(a.step, a.found, a.drift) for a in result.actions] == [(Step.UPDATE, found, True)]


def test_calendar_plan_reads_times_in_any_offset_notation() -> None:
    snapshot = group(ANN, upcoming=(SOON,))
    start = SOON.starts_at.isoformat().replace("+00:00", "Z")
    live = live_for(snapshot, start={"dateTime": start, "timeZone": "UTC"})
    assert plan(snapshot, applied_for(snapshot), live).actions == ()


def test_calendar_plan_settles_a_pending_write_found_applied() -> None:
    snapshot = group(ANN, upcoming=(SOON,))
    result = plan(snapshot, applied_for(snapshot, pending=True), live_for(snapshot))
    assert [(a.step, a.drift) for a in result.actions] == [(Step.SETTLE, True)]


def test_calendar_plan_recreates_a_missing_event_of_ours() -> None:
    snapshot = group(ANN, upcoming=(SOON,))
    result = plan(snapshot, applied_for(snapshot), {})
    assert [(a.step, a.found) for a in result.actions] == [(Step.INSERT, "event of ours missing")]


def test_calendar_plan_cancels_upcoming_events_of_a_deleted_group_but_not_past_ones() -> None:
    applied = applied_for(group(ANN))
    past = AppliedEvent(9, "cal7", event_id_for(9), None, "x", NOW - timedelta(days=1), False)
    result = plan_calendar([], [*applied, past], NOW)
    assert {a.record.meeting_id for a in result.steps(Step.CANCEL) if a.record} == {10, 11}


def test_calendar_plan_keeps_the_old_calendar_owed_after_a_move() -> None:
    old = applied_for(group(ANN, upcoming=(SOON,), calendar_id="old"))
    moved = group(ANN, upcoming=(SOON,))
    result = plan(moved, old, {})
    assert {(a.step, a.subject) for a in result.actions} == {
        (Step.CANCEL, f"event {event_id_for(10)} on old"),
        (Step.INSERT, f"event {event_id_for(10)} on cal7"),
    }


def test_calendar_plan_closes_what_a_person_already_deleted() -> None:
    snapshot = group(ANN, upcoming=(SOON,))
    gone = plan(snapshot, applied_for(snapshot), live_for(snapshot, status="cancelled"),
                desired=group(ANN, upcoming=()))
    assert [a.step for a in gone.actions] == [Step.CLOSE]


def test_reminder_plan_schedules_skips_late_and_keeps_final() -> None:
    snapshot = group(ANN, upcoming=(MeetingInfo(10, 1, NOW + timedelta(minutes=30), 60),))
    desired = desired_reminders(snapshot, (1440, 60, 10))
    sent = ExistingReminder(ReminderKey(10, 10), NOW + timedelta(minutes=20), "sent")
    plan = plan_reminders(desired, [sent], NOW, grace=timedelta(minutes=10))
    # 24 h before was 23.5 h ago: skipped; 60 min before was 30 min ago: skipped too.
    assert [k.offset_minutes for k, _ in plan.too_late] == [60, 1440]
    assert plan.schedule == ()
    assert plan.cancel == ()


def test_reminder_plan_moves_and_cancels() -> None:
    snapshot = group(ANN, upcoming=(SOON,))
    desired = desired_reminders(snapshot, (60,))
    moved = ExistingReminder(ReminderKey(10, 60), NOW + timedelta(days=5), "scheduled")
    gone = ExistingReminder(ReminderKey(99, 60), NOW + timedelta(days=1), "scheduled")
    plan = plan_reminders(desired, [moved, gone], NOW, grace=timedelta(minutes=10))
    assert plan.schedule == ((ReminderKey(10, 60), SOON.starts_at - timedelta(minutes=60)),)
    assert plan.cancel == (ReminderKey(99, 60),)
    assert len(nonce_for(ReminderKey(123456789, 1440))) <= 25


def test_reminder_plan_leaves_rows_in_flight_and_missed_ones_to_the_delivery() -> None:
    snapshot = group(ANN, upcoming=(SOON,))
    desired = desired_reminders(snapshot, (60, 10))
    in_flight = ExistingReminder(ReminderKey(10, 60), NOW + timedelta(days=5), "sending")
    missed = ExistingReminder(ReminderKey(10, 10), NOW - timedelta(minutes=5), "missed")
    gone_in_flight = ExistingReminder(ReminderKey(99, 60), NOW, "sending")
    retrying = ExistingReminder(ReminderKey(98, 60), NOW, "retrying")
    plan = plan_reminders(
        desired, [in_flight, missed, gone_in_flight, retrying], NOW, grace=timedelta(minutes=10)
    )
    # A row being sent is the delivery's to settle (it reads the meeting itself); a
    # missed one is final; a retrying one whose meeting is gone is cancelled.
    assert plan.schedule == plan.too_late == plan.unchanged == ()
    assert plan.cancel == (ReminderKey(98, 60),)


def test_rsvp_plan_adds_members_removes_leavers_and_imports_answers() -> None:
    existing = {(10, 2): "accepted", (11, 2): "declined", (10, 1): "needsAction"}
    plan = plan_rsvps(
        group(ANN, upcoming=(SOON, LATER)), existing, {10: {"ann@example.org": "tentative"}}
    )
    assert plan.insert == ((11, 1, "needsAction"),)
    assert plan.update == ((10, 1, "tentative"),)
    assert plan.delete == ((10, 2), (11, 2))


def test_rsvp_plan_of_a_deleted_group_removes_everything() -> None:
    plan = plan_rsvps(GroupSnapshot(7, exists=False), {(10, 1): "accepted"}, None)
    assert plan.delete == ((10, 1),)
