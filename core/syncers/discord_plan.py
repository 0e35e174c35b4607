"""Pure: which Discord grants a group should have, and the difference to what we applied.

A grant is (kind, target, user): a member permission overwrite on one of the group's
channels, or the group's role. Only grants recorded as ours are ever revoked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.syncers.snapshot import GroupSnapshot

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
CONNECT = 1 << 20
SPEAK = 1 << 21

TEXT_ALLOW = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY
VOICE_ALLOW = VIEW_CHANNEL | CONNECT | SPEAK

CHANNEL_OVERWRITE = "channel_overwrite"
ROLE = "role"


@dataclass(frozen=True, order=True)
class Grant:
    kind: str  # CHANNEL_OVERWRITE or ROLE
    target_id: str  # channel id or role id
    discord_user_id: str
    allow: int = field(default=0, compare=False)


@dataclass(frozen=True)
class DiscordPlan:
    grant: tuple[Grant, ...]
    revoke: tuple[Grant, ...]
    unchanged: int
    skipped: int  # active members without a Discord id: not a failure


def desired_grants(snapshot: GroupSnapshot) -> tuple[set[Grant], int]:
    """The grants the group should have, and how many members cannot get any."""
    if not snapshot.exists:
        return set(), 0
    targets: list[tuple[str, str, int]] = []
    if snapshot.text_channel_id:
        targets.append((CHANNEL_OVERWRITE, snapshot.text_channel_id, TEXT_ALLOW))
    if snapshot.voice_channel_id:
        targets.append((CHANNEL_OVERWRITE, snapshot.voice_channel_id, VOICE_ALLOW))
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


def plan_discord(snapshot: GroupSnapshot, applied: set[Grant]) -> DiscordPlan:
    desired, skipped = desired_grants(snapshot)
    return DiscordPlan(
        grant=tuple(sorted(desired - applied)),
        revoke=tuple(sorted(applied - desired)),
        unchanged=len(desired & applied),
        skipped=skipped,
    )
