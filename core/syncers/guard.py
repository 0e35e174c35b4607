"""Pure: the deletion guard's policy, and what a planned syncer tells it (issue 25).

A *removal* is one member losing one group, whatever number of overwrites or attendee
entries it takes. A sync is held before any write when its plan would

- remove more than ``max_removals`` members *and* more than ``max_share`` of the group's
  current members (a large group losing a few is routine; a group emptied is not), or
- take its sync type's removals across all groups past ``max_per_window`` within the
  sliding window (ten minutes, scaled by TIME_SCALE).

A limit of 0 is never exceeded (it disables that limit; either of the pair disables the
per-group rule). The window counts per sync type: a member who moves loses their Discord
access and their calendar invitations, one removal of each type.

The whole key's plan is held, its additions with it (a sync is one reconciliation: half
of it applied is a state nobody planned); other keys, and the group's other sync types,
go on. ``decide`` is the policy; the I/O (window counts, held plans) is the engine's
``core.engine.running.held``, which a syncer reaches through ``GuardPort``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core.syncers.snapshot import GroupSnapshot

WINDOW_SECONDS = 600.0  # nominal; the engine multiplies it by the time scale


@dataclass(frozen=True)
class Limits:
    max_removals: int = 10
    max_share: float = 0.5
    max_per_window: int = 500


@dataclass(frozen=True)
class Verdict:
    hold: bool
    reason: str = ""


def decide(removals: int, members: int, in_window: int, limits: Limits) -> Verdict:
    """Hold or go for a plan removing ``removals`` of ``members`` current members, when the
    window already holds ``in_window`` removals of the same sync type."""
    if removals <= 0:
        return Verdict(False)
    share = removals / members if members > 0 else 1.0
    if (limits.max_removals > 0 and limits.max_share > 0
            and removals > limits.max_removals and share > limits.max_share):
        return Verdict(True, f"would remove {removals} of {members} members ({share:.0%}); "
                             f"limit: more than {limits.max_removals} and more than "
                             f"{limits.max_share:.0%}")
    if limits.max_per_window > 0 and in_window + removals > limits.max_per_window:
        return Verdict(True, f"would take removals in 10 minutes to {in_window + removals} "
                             f"({in_window} already, {removals} here); limit "
                             f"{limits.max_per_window}")
    return Verdict(False)


@dataclass(frozen=True)
class Proposal:
    """What a planned syncer shows the guard before it applies a plan.

    ``removed``: who loses the group (one identity per member: a Discord user id, an
    e-mail); ``members``: how many hold access now (the share's base); ``plan``: the
    exact plan in words an operator reads (who loses which overwrite, which attendees go,
    which events are cancelled); ``fingerprint``: the desired membership it came from."""

    removed: frozenset[str]
    members: int
    plan: dict[str, Any]
    fingerprint: str
    additions: int = 0

    @property
    def removals(self) -> int:
        return len(self.removed)


@dataclass(frozen=True)
class Stored:
    """A held plan as the store keeps it, for ``judge``."""

    fingerprint: str
    removed: frozenset[str]
    decision: str  # pending | approved | rejected
    reason: str = ""  # why it was held, in the operator's words


@dataclass(frozen=True)
class Judgement:
    go: bool
    reason: str = ""
    store: bool = False  # hold with this (new) plan, replacing any stored one
    approved: bool = False  # goes because an operator approved it (forget it once applied)
    forget: bool = False  # a stored plan no longer applies: drop it


def judge(proposal: Proposal, verdict: Verdict, stored: Stored | None) -> Judgement:
    """What to do with a proposal, given the policy's verdict and any held plan of the key.

    An approval lets through a plan of the same desired membership that removes no one
    the approved plan did not (re-read live state may find fewer to remove, never more);
    a rejection holds while the desired membership is unchanged; a pending plan re-checked
    with the same membership stays held (with the re-read plan) while it removes anyone:
    only an operator lets its removals through, not a window that has room again;
    anything else is judged afresh (and a new hold replaces the stored plan)."""
    same = stored is not None and stored.fingerprint == proposal.fingerprint
    if stored is not None and same and stored.decision == "approved" and (
        proposal.removed <= stored.removed
    ):
        return Judgement(True, approved=True)
    if stored is not None and same and stored.decision == "rejected":
        return Judgement(False, "rejected by an operator; held until the membership changes")
    if stored is not None and same and stored.decision == "pending" and (
        not verdict.hold and proposal.removals > 0
    ):
        return Judgement(False, stored.reason or "held until an operator approves or rejects it",
                         store=True)
    if not verdict.hold:
        return Judgement(True, forget=stored is not None)
    return Judgement(False, verdict.reason, store=True)


def membership_fingerprint(snapshot: GroupSnapshot) -> str:
    """The desired membership a plan was made from (and the group's targets, which decide
    what the members are given): a change of either re-plans a held key."""
    shape = {
        "exists": snapshot.exists,
        "targets": [snapshot.guild_id, snapshot.text_channel_id, snapshot.voice_channel_id,
                    snapshot.role_id, snapshot.calendar_id],
        "members": sorted((m.user_id, m.email, m.discord_user_id or "")
                          for m in snapshot.members),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Check:
    sync_type: str
    group_id: int
    proposal: Proposal
    now: datetime = field(compare=False)


class GuardPort(Protocol):
    """The engine's guard, as a planned syncer sees it (``SyncContext.guard``)."""

    async def check(self, check: Check) -> Judgement:
        """Go or hold; a hold is stored with its plan, a go's removals enter the window."""

    async def applied(self, sync_type: str, group_id: int) -> None:
        """An approved plan was applied: its held row is done."""
