"""The discord plan as a decision table: desired, recorded and live → what a sync does."""

from __future__ import annotations

import pytest

from core.clients.ports import MEMBER_OVERWRITE, ROLE_OVERWRITE, Overwrite
from core.syncers.discord_plan import (
    CHANNEL_OVERWRITE,
    PENDING,
    ROLE,
    SETTLED,
    TEXT_ALLOW,
    VOICE_ALLOW,
    Grant,
    LiveDiscord,
    Step,
    plan_discord,
)
from core.syncers.snapshot import GroupSnapshot, Member

ANN = Member(1, "ann@example.org", "11", "Ann")
NOID = Member(3, "cy@example.org", None, "Cy")
OURS = Overwrite("11", MEMBER_OVERWRITE, TEXT_ALLOW, 0)
PERSONS = Overwrite("11", MEMBER_OVERWRITE, 1024, 2048)
TEXT = Grant(CHANNEL_OVERWRITE, "500", "11", TEXT_ALLOW)
ROLE_GRANT = Grant(ROLE, "42", "11")


def group(*members: Member, role: bool = False) -> GroupSnapshot:
    return GroupSnapshot(7, exists=True, name="Cohort", guild_id="900", text_channel_id="500",
                         role_id="42" if role else None, members=members)


def live(text: Overwrite | None = None, roles: frozenset[str] | None = frozenset()
         ) -> LiveDiscord:
    return LiveDiscord({"500": {} if text is None else {"11": text}}, {"11": roles})


@pytest.mark.parametrize(
    ("members", "state", "seen", "step", "drift"),
    [
        ((ANN,), None, None, Step.GRANT, False),
        ((ANN,), SETTLED, OURS, None, False),  # converged: nothing to do
        ((ANN,), SETTLED, None, Step.RESTORE, True),  # a moderator removed ours
        ((ANN,), SETTLED, PERSONS, Step.RESTORE, True),  # ours, altered
        ((ANN,), PENDING, OURS, Step.SETTLE, True),  # applied, answer lost
        ((ANN,), PENDING, None, Step.RESTORE, False),  # never applied
        ((ANN,), PENDING, PERSONS, Step.FORGET, True),  # a person's took its place
        ((), SETTLED, OURS, Step.REVOKE, False),  # left
        ((), SETTLED, None, Step.FORGET, True),  # already gone
        ((), PENDING, OURS, Step.REVOKE, True),  # grant applied, answer lost, then left
        ((), PENDING, PERSONS, Step.FORGET, True),  # never ours: untouched
        ((), None, PERSONS, None, False),  # a person's overwrite of a non-member
    ],
)
def test_overwrite_decisions(members: tuple[Member, ...], state: str | None,
                             seen: Overwrite | None, step: Step | None, drift: bool) -> None:
    records = {} if state is None else {TEXT: state}
    plan = plan_discord(group(*members), records, live(seen))
    actions = [(a.step, a.drift) for a in plan.actions]
    assert actions == ([] if step is None else [(step, drift)])


@pytest.mark.parametrize("seen", [OURS, PERSONS])
def test_an_overwrite_without_record_is_never_taken_for_ours(seen: Overwrite) -> None:
    plan = plan_discord(group(ANN), {}, live(seen))
    assert plan.actions == ()
    assert plan.foreign == 1


def test_a_role_held_before_joining_is_not_ours_and_stays_when_they_leave() -> None:
    joined = plan_discord(group(ANN, role=True), {}, live(OURS, frozenset({"42"})))
    assert joined.steps(Step.GRANT) == ()
    assert joined.foreign == 2
    left = plan_discord(group(role=True), {}, live(None, frozenset({"42"})))
    assert left.actions == ()


def test_a_recorded_role_removed_behind_our_back_is_restored() -> None:
    plan = plan_discord(group(ANN, role=True), {ROLE_GRANT: SETTLED, TEXT: SETTLED},
                        live(OURS, frozenset()))
    assert [(a.step, a.grant) for a in plan.actions] == [(Step.RESTORE, ROLE_GRANT)]


def test_unreadable_channel_decides_nothing_there() -> None:
    plan = plan_discord(group(ANN), {TEXT: SETTLED}, LiveDiscord({"500": None}, {}))
    assert plan.actions == ()
    assert plan.unreadable == 1


def test_members_without_discord_id_are_skipped() -> None:
    plan = plan_discord(group(ANN, NOID), {}, live())
    assert plan.skipped == 1
    assert len(plan.steps(Step.GRANT)) == 1


def test_deleted_group_revokes_what_is_ours_on_any_channel() -> None:
    voice = Grant(CHANNEL_OVERWRITE, "700", "11", VOICE_ALLOW)
    person = Overwrite("22", MEMBER_OVERWRITE, 1024, 0)
    role_ow = Overwrite("5", ROLE_OVERWRITE, 1024, 0)
    overwrites = {"700": {"11": Overwrite("11", MEMBER_OVERWRITE, VOICE_ALLOW, 0),
                          "22": person, "5": role_ow}}
    plan = plan_discord(GroupSnapshot(7, exists=False), {voice: SETTLED},
                        LiveDiscord(overwrites, {}))
    assert [(a.step, a.grant) for a in plan.actions] == [(Step.REVOKE, voice)]
