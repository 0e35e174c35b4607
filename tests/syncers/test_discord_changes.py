"""What a change the gateway saw means, judged by the Discord sync's own planner: one of
ours deleted or altered owes a repair; a person's own overwrite and our own echo owe
nothing; a group's deleted channel owes a run that names the missing target."""

from __future__ import annotations

from core.clients.gateway_cache import ChannelChange
from core.clients.ports import MEMBER_OVERWRITE, Overwrite
from core.syncers.discord_changes import GroupView, judge
from core.syncers.discord_plan import CHANNEL_OVERWRITE, SETTLED, TEXT_ALLOW, Grant
from core.syncers.snapshot import GroupSnapshot, Member

TEXT, ANN, EVE = "500", "11", "13"
OURS = Overwrite(ANN, MEMBER_OVERWRITE, TEXT_ALLOW, 0)
EVES = Overwrite(EVE, MEMBER_OVERWRITE, 1024, 0)  # a person's own, not a member
GROUP = GroupSnapshot(7, exists=True, name="Cohort", guild_id="900", text_channel_id=TEXT,
                      members=(Member(1, "ann@example.org", ANN, "Ann"),))
RECORDED = {Grant(CHANNEL_OVERWRITE, TEXT, ANN, TEXT_ALLOW): SETTLED}
VIEWS = {7: GroupView(GROUP, RECORDED)}


def change(before: list[Overwrite], after: list[Overwrite] | None) -> ChannelChange:
    return ChannelChange(TEXT, "900", {o.target_id: o for o in before},
                         None if after is None else {o.target_id: o for o in after})


def test_our_overwrite_deleted_or_altered_owes_a_repair() -> None:
    deleted = judge(change([OURS, EVES], [EVES]), VIEWS)
    altered = judge(change([OURS], [Overwrite(ANN, MEMBER_OVERWRITE, TEXT_ALLOW, 2048)]), VIEWS)

    assert deleted.repairs == {7: [f"channel {TEXT} user {ANN}: overwrite of ours missing"]}
    assert altered.repairs == {7: [f"channel {TEXT} user {ANN}: overwrite of ours altered"]}


def test_a_persons_own_overwrite_changed_owes_nothing() -> None:
    assert judge(change([OURS, EVES], [OURS]), VIEWS).repairs == {}
    assert judge(change([OURS], [OURS, EVES]), VIEWS).repairs == {}


def test_our_own_write_showing_the_desired_state_owes_nothing() -> None:
    assert judge(change([], [OURS]), VIEWS).repairs == {}


def test_a_deleted_channel_of_the_group_owes_a_run() -> None:
    verdict = judge(change([OURS], None), VIEWS)

    assert verdict.repairs == {
        7: [f"channel {TEXT} deleted (named in groups.discord_text_channel_id)"]}


def test_a_channel_of_no_group_owes_nothing() -> None:
    other = ChannelChange("501", "900", {ANN: OURS}, {})
    assert judge(other, VIEWS).repairs == {}
