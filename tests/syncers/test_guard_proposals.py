"""What a plan shows the deletion guard: removals are members losing the group, not
overwrites or attendee entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.clients.ports import MEMBER_OVERWRITE, Overwrite
from core.syncers import calendar_plan, discord_plan
from core.syncers.calendar_plan import AppliedEvent, desired_events, live_event, plan_calendar
from core.syncers.discord_plan import (
    CHANNEL_OVERWRITE,
    SETTLED,
    TEXT_ALLOW,
    Grant,
    LiveDiscord,
    plan_discord,
)
from core.syncers.guard import Proposal, membership_fingerprint
from core.syncers.snapshot import GroupSnapshot, MeetingInfo, Member

ANN = Member(1, "ann@example.org", "11", "Ann")
BO = Member(2, "bo@example.org", "12", "Bo")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def group(*members: Member, text: str = "500") -> GroupSnapshot:
    meetings = tuple(MeetingInfo(m, m, NOW + timedelta(days=7 * m), 60) for m in (1, 2))
    return GroupSnapshot(7, exists=True, name="Cohort", guild_id="900", text_channel_id=text,
                         calendar_id="cal", members=members, upcoming=meetings)


def ours(*users: str) -> dict[str, Overwrite]:
    return {u: Overwrite(u, MEMBER_OVERWRITE, TEXT_ALLOW, 0) for u in users}


def discord_proposal(snapshot: GroupSnapshot) -> Proposal | None:
    """Ann and Bo hold our overwrite on channel 500 (and one of theirs is live on 600)."""
    records = {Grant(CHANNEL_OVERWRITE, "500", u, TEXT_ALLOW): SETTLED for u in ("11", "12")}
    live = LiveDiscord({"500": ours("11", "12"), "600": {}}, {})
    plan = plan_discord(snapshot, records, live)
    return discord_plan.removal_proposal(snapshot, records, plan,
                                         membership_fingerprint(snapshot))


def test_a_member_who_leaves_is_one_removal_with_the_overwrites_listed() -> None:
    found = discord_proposal(group(ANN))
    assert found is not None
    assert (found.removed, found.members) == (frozenset({"12"}), 2)
    assert found.plan["users_losing"] == {"12": ["channel_overwrite 500"]}


def test_a_channel_swap_that_keeps_everyone_removes_no_one() -> None:
    assert discord_proposal(group(ANN, BO, text="600")) is None


def test_one_person_off_two_events_is_one_removal() -> None:
    before, after = group(ANN, BO), group(ANN)
    applied = [AppliedEvent(s.meeting_id, "cal", s.event_id, None, s.fingerprint, s.starts_at,
                            cancelled=False) for s in desired_events(before)]
    live = {s.event_id: live_event({**s.body, "etag": "e"}) for s in desired_events(before)}
    plan = plan_calendar(desired_events(after), applied, NOW, live, "cal")
    found = calendar_plan.removal_proposal(after, plan, live, membership_fingerprint(after))
    assert found is not None
    assert (found.removed, found.members) == (frozenset({"bo@example.org"}), 2)
    assert found.plan["attendees_removed"] == {s.event_id: ["bo@example.org"]
                                               for s in desired_events(before)}


def test_the_fingerprint_follows_the_membership() -> None:
    assert membership_fingerprint(group(ANN, BO)) == membership_fingerprint(group(BO, ANN))
    assert membership_fingerprint(group(ANN)) != membership_fingerprint(group(ANN, BO))
