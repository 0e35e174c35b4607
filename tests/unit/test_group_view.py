"""The group page's item-by-item view is the sync's own plan in words: pure cases."""

from __future__ import annotations

from core.clients.ports import Overwrite
from core.syncers.discord_plan import (
    CHANNEL_OVERWRITE,
    SETTLED,
    TEXT_ALLOW,
    Grant,
    LiveDiscord,
    plan_discord,
)
from core.syncers.snapshot import GroupSnapshot, Member
from core.syncers.view import discord_view

SNAPSHOT = GroupSnapshot(group_id=1, exists=True, name="G", guild_id="9", text_channel_id="10",
                         members=(Member(1, "a@x", "100", "A"),))
OURS = Grant(CHANNEL_OVERWRITE, "10", "100", TEXT_ALLOW)


def view_of(live: dict[str, Overwrite], records: dict[Grant, str]) -> tuple[str, str, str | None]:
    state = LiveDiscord({"10": live}, {})
    (item,) = discord_view(SNAPSHOT, records, state, plan_discord(SNAPSHOT, records, state)).items
    return item.live, item.difference.split(" (")[0], item.sends


def test_an_overwrite_of_ours_deleted_behind_our_back_will_be_restored() -> None:
    assert view_of({}, {OURS: SETTLED}) == (
        "missing", "will be restored", "PUT /channels/10/permissions/100")


def test_an_overwrite_in_place_is_in_step_and_sends_nothing() -> None:
    assert view_of({"100": Overwrite("100", 1, TEXT_ALLOW, 0)}, {OURS: SETTLED}) == (
        "view, send, read history", "in step", None)


def test_a_persons_overwrite_where_we_would_grant_is_left_alone() -> None:
    live, difference, sends = view_of({"100": Overwrite("100", 1, 1024, 0)}, {})
    assert (difference, sends) == ("left alone: a person's overwrite or role", None)
    assert live.startswith("a different overwrite")
