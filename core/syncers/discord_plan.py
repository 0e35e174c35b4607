"""Pure: which Discord grants a group should have, and what to do given what Discord holds.

A grant is (kind, target, user): a member permission overwrite on one of the group's
channels, or the group's role. Three inputs decide every grant (DESIGN §3):

- the desired grants, from the group's active members;
- our delivery records (settled, or pending: sent but never confirmed), which decide
  what is ours to remove;
- the live state read from Discord, which decides what is missing or altered.

A person's overwrite, or a role a member held before we ever granted it, has no record
of ours and is never changed. A pending record is ours only if the live state looks
exactly like what we would have set; anything else there was made by a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from core.clients.ports import MEMBER_OVERWRITE, Overwrite
from core.syncers.guard import Proposal
from core.syncers.snapshot import GroupSnapshot

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
CONNECT = 1 << 20
SPEAK = 1 << 21

TEXT_ALLOW = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY
VOICE_ALLOW = VIEW_CHANNEL | CONNECT | SPEAK
OUR_ALLOWS = frozenset({TEXT_ALLOW, VOICE_ALLOW})

CHANNEL_OVERWRITE = "channel_overwrite"
ROLE = "role"

PENDING = "pending"
SETTLED = "settled"
RESEND = "resend"  # a force re-sync: send it again whatever the live state shows


@dataclass(frozen=True, order=True)
class Grant:
    kind: str  # CHANNEL_OVERWRITE or ROLE
    target_id: str  # channel id or role id
    discord_user_id: str
    allow: int = field(default=0, compare=False)


class Step(StrEnum):
    GRANT = "grant"  # no record: record pending, apply, settle
    RESTORE = "restore"  # ours but missing or altered live: apply again, settle
    REVOKE = "revoke"  # ours, present live, no longer wanted: remove, forget
    SETTLE = "settle"  # pending and found applied: settle the record only
    FORGET = "forget"  # ours on record but nothing of ours live: drop the record only


@dataclass(frozen=True)
class Action:
    step: Step
    grant: Grant
    found: str  # what the live state showed, for the repair log
    drift: bool  # found behind our back (not a membership change)

    @property
    def subject(self) -> str:
        grant = self.grant
        return f"{grant.kind} {grant.target_id} user {grant.discord_user_id}"


@dataclass(frozen=True)
class LiveDiscord:
    """What Discord holds now. A channel maps to None when it could not be read (the
    reason is reported apart); a deleted channel is an empty mapping (nothing on it)."""

    overwrites: Mapping[str, Mapping[str, Overwrite] | None]
    roles: Mapping[str, frozenset[str] | None]  # user → roles held; None: not read


@dataclass(frozen=True)
class DiscordPlan:
    actions: tuple[Action, ...]
    unchanged: int
    skipped: int  # active members without a Discord id: not a failure
    foreign: int  # a person's overwrite or role where we would act: left alone
    unreadable: int  # grants undecided because their live state could not be read

    @property
    def drift(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.drift)

    def steps(self, *steps: Step) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.step in steps)


def desired_grants(snapshot: GroupSnapshot) -> tuple[set[Grant], int]:
    """The grants the group should have, and how many members cannot get any."""
    if not snapshot.exists:
        return set(), 0
    targets: list[tuple[str, str, int]] = []
    for kind, target, allow in channel_targets(snapshot):
        targets.append((kind, target, allow))
    if snapshot.role_id and snapshot.guild_id:
        targets.append((ROLE, snapshot.role_id, 0))
    grants = set()
    skipped = 0
    for member in snapshot.members:
        if member.discord_user_id is None:
            skipped += 1
            continue
        for kind, target, allow in targets:
            grants.add(Grant(kind, target, member.discord_user_id, allow))
    return grants, skipped


def channel_targets(snapshot: GroupSnapshot) -> list[tuple[str, str, int]]:
    targets = []
    if snapshot.exists and snapshot.text_channel_id:
        targets.append((CHANNEL_OVERWRITE, snapshot.text_channel_id, TEXT_ALLOW))
    if snapshot.exists and snapshot.voice_channel_id:
        targets.append((CHANNEL_OVERWRITE, snapshot.voice_channel_id, VOICE_ALLOW))
    return targets


def channel_columns(snapshot: GroupSnapshot) -> dict[str, str]:
    """The group's own channels, each with the column of ``groups`` that names it: what an
    operator fixes when the channel is gone."""
    columns = {}
    if snapshot.exists and snapshot.voice_channel_id:
        columns[snapshot.voice_channel_id] = "groups.discord_voice_channel_id"
    if snapshot.exists and snapshot.text_channel_id:
        columns[snapshot.text_channel_id] = "groups.discord_text_channel_id"
    return columns


def channels_to_read(snapshot: GroupSnapshot, records: Mapping[Grant, str]) -> list[str]:
    """One read per channel of the group, and of any channel we still hold records on."""
    channels = {target for _, target, _ in channel_targets(snapshot)}
    channels |= {g.target_id for g in records if g.kind == CHANNEL_OVERWRITE}
    return sorted(channels)


def members_to_read(snapshot: GroupSnapshot, records: Mapping[Grant, str]) -> list[str]:
    """Members whose roles decide something: wanted in the role, or on record with it."""
    desired, _ = desired_grants(snapshot)
    users = {g.discord_user_id for g in desired if g.kind == ROLE}
    users |= {g.discord_user_id for g in records if g.kind == ROLE}
    return sorted(users)


def plan_discord(
    snapshot: GroupSnapshot, records: Mapping[Grant, str], live: LiveDiscord
) -> DiscordPlan:
    """``records`` maps each recorded grant to its state (PENDING or SETTLED)."""
    desired, skipped = desired_grants(snapshot)
    wanted = {g: g for g in desired}
    allows = {target: allow for _, target, allow in channel_targets(snapshot)}
    actions: list[Action] = []
    unchanged = foreign = unreadable = 0
    for key in sorted(set(wanted) | set(records)):
        want = wanted.get(key)
        grant = want or Grant(
            key.kind, key.target_id, key.discord_user_id, allows.get(key.target_id, 0)
        )
        seen = _seen(grant, live)
        if seen is _UNREAD:
            unreadable += 1
            continue
        decision = _decide(grant, want is not None, records.get(key), seen)
        if decision is None:
            unchanged += 1
        elif not isinstance(decision, Action):
            foreign += 1
        else:
            actions.append(decision)
            if decision.step is Step.FORGET and want is not None:
                foreign += 1  # a pending record gave way to a person's overwrite
    return DiscordPlan(tuple(actions), unchanged, skipped, foreign, unreadable)


class _Unread:
    pass


_UNREAD = _Unread()
# What is live for one grant: "ours" (looks exactly like what we set), "other" (a different
# overwrite on that member), "absent", or _UNREAD.
Seen = str | _Unread


def _seen(grant: Grant, live: LiveDiscord) -> Seen:
    if grant.kind == ROLE:
        roles = live.roles.get(grant.discord_user_id)
        if roles is None:
            return _UNREAD
        return "ours" if grant.target_id in roles else "absent"
    overwrites = live.overwrites.get(grant.target_id)
    if overwrites is None:
        return _UNREAD
    existing = overwrites.get(grant.discord_user_id)
    if existing is None:
        return "absent"
    return "ours" if looks_ours(existing, grant.allow) else "other"


def looks_ours(existing: Overwrite, allow: int) -> bool:
    """Exactly the overwrite we set (``allow`` 0: the channel is no longer the group's, so
    either of the allows we ever set)."""
    if existing.type != MEMBER_OVERWRITE or existing.deny:
        return False
    return existing.allow == allow if allow else existing.allow in OUR_ALLOWS


def _decide(grant: Grant, wanted: bool, state: str | None, seen: Seen) -> Action | str | None:
    what = "role" if grant.kind == ROLE else "overwrite"
    if state == RESEND:
        if wanted:
            return Action(Step.RESTORE, grant, f"{what} re-send requested", drift=False)
        state = SETTLED
    if wanted:
        if state is None:
            if seen == "absent":
                return Action(Step.GRANT, grant, f"{what} missing for a member", drift=False)
            return "foreign"  # a person's overwrite, or a role held before joining
        if seen == "ours":
            if state == PENDING:
                return Action(Step.SETTLE, grant, f"pending {what} found applied", drift=True)
            return None
        if state == PENDING and seen == "other":
            return Action(
                Step.FORGET, grant, f"a person's {what} instead of our pending one", drift=True
            )
        found = f"{what} of ours missing" if seen == "absent" else f"{what} of ours altered"
        if state == PENDING:
            found = f"pending {what} not applied"
        return Action(Step.RESTORE, grant, found, drift=state == SETTLED)
    # Not wanted: only ours (on record) is removed; a pending record is ours only if it
    # looks exactly like what we would have set.
    if seen == "absent":
        return Action(Step.FORGET, grant, f"{what} of ours already gone", drift=True)
    if state == PENDING and seen == "other":
        return Action(
            Step.FORGET, grant, f"a person's {what} instead of our pending one", drift=True
        )
    found = f"pending {what} found applied" if state == PENDING else f"{what} of a non-member"
    return Action(Step.REVOKE, grant, found, drift=state == PENDING)


def removal_proposal(
    snapshot: GroupSnapshot, records: Mapping[Grant, str], plan: DiscordPlan, fingerprint: str
) -> Proposal | None:
    """For the deletion guard: the members who lose the group (every grant of theirs
    revoked and none wanted: a member who only loses an old channel's overwrite is not
    a removal), out of the members holding a grant of ours now."""
    desired, _ = desired_grants(snapshot)
    staying = {g.discord_user_id for g in desired}
    losing: dict[str, list[str]] = {}
    for action in plan.steps(Step.REVOKE):
        grant = action.grant
        if grant.discord_user_id not in staying:
            losing.setdefault(grant.discord_user_id, []).append(f"{grant.kind} {grant.target_id}")
    if not losing:
        return None
    holders = {g.discord_user_id for g in records} | set(losing)
    granted = len(plan.steps(Step.GRANT, Step.RESTORE))
    return Proposal(
        removed=frozenset(losing),
        members=len(holders),
        plan={"users_losing": {user: sorted(lost) for user, lost in sorted(losing.items())},
              "grants": granted},
        fingerprint=fingerprint,
        additions=granted,
    )
