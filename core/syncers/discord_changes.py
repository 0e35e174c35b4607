"""Pure: what a change the Discord gateway saw on a channel means for groupsync.

A ``CHANNEL_UPDATE`` carries the channel in full; of what changed on it only the
overwrites the Discord sync would act on matter: one of ours missing or altered, a
member's overwrite we want but cannot see, one of ours on a non-member. Those owe the
group's Discord key a run (reason ``live_change``). A person's own overwrite (no record
of ours, not wanted) never does, and neither does the echo of our own write: it already
shows the desired state. The decision is the sync's own planner's (``plan_discord`` on
the changed channel alone), so this can never want what the sync does not.

A ``CHANNEL_DELETE`` of a channel a group names (or holds records on) owes the key too:
its run reads the channel over REST and names the missing target for the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.clients.gateway_cache import ChannelChange
from core.syncers.discord_plan import (
    CHANNEL_OVERWRITE,
    Grant,
    LiveDiscord,
    Step,
    channel_columns,
    plan_discord,
)
from core.syncers.snapshot import GroupSnapshot

CALLS = frozenset({Step.GRANT, Step.RESTORE, Step.REVOKE})


@dataclass(frozen=True)
class GroupView:
    snapshot: GroupSnapshot
    records: Mapping[Grant, str]  # each recorded grant's state


@dataclass(frozen=True)
class Verdict:
    # group → what it found, one phrase per overwrite ("channel 87…: user 87…: overwrite
    # of ours missing"), or the deleted channel
    repairs: dict[int, list[str]] = field(default_factory=dict)


def concerns(view: GroupView, channel_id: str) -> bool:
    """The group names the channel, or holds records of ours on it."""
    return channel_id in channel_columns(view.snapshot) or any(
        g.kind == CHANNEL_OVERWRITE and g.target_id == channel_id for g in view.records)


def judge(change: ChannelChange, groups: Mapping[int, GroupView]) -> Verdict:
    verdict = Verdict()
    channel = change.channel_id
    for group_id, view in sorted(groups.items()):
        if not concerns(view, channel):
            continue
        if change.after is None:
            column = channel_columns(view.snapshot).get(channel)
            what = f"named in {column}" if column else "holding overwrites of ours"
            verdict.repairs[group_id] = [f"channel {channel} deleted ({what})"]
            continue
        changed = set(change.changed_targets)
        plan = plan_discord(view.snapshot, view.records,
                            LiveDiscord({channel: change.after}, {}))
        found = [
            f"channel {channel} user {a.grant.discord_user_id}: {a.found}"
            for a in plan.actions
            if a.step in CALLS and a.grant.kind == CHANNEL_OVERWRITE
            and a.grant.target_id == channel and a.grant.discord_user_id in changed
        ]
        if found:
            verdict.repairs[group_id] = found
    return verdict
