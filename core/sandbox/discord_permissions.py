"""Discord's permission computation (docs: topics/permissions, "Permission Overwrites").

Base permissions are the @everyone role's OR the member's roles' (ADMINISTRATOR grants
everything). In a channel they are then adjusted by overwrites, in order: the @everyone
overwrite, the member's role overwrites (denies and allows combined), the member's own
overwrite. A channel synced with its category carries the category's overwrites; the fake
applies a channel's parent category overwrites first and the channel's own over them.
Without VIEW_CHANNEL a member has no permission in the channel at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MENTION_EVERYONE = 1 << 17
MANAGE_ROLES = 1 << 28
ADMINISTRATOR = 1 << 3
ALL = (1 << 53) - 1


@dataclass(frozen=True)
class OverwriteBits:
    type: int  # 0 role, 1 member
    allow: int
    deny: int


def base_permissions(everyone: int, role_permissions: Sequence[int]) -> int:
    bits = everyone
    for permissions in role_permissions:
        bits |= permissions
    return ALL if bits & ADMINISTRATOR else bits


def channel_permissions(
    base: int,
    guild_id: str,
    member_id: str,
    member_roles: Sequence[str],
    overwrites: Mapping[str, OverwriteBits],
) -> int:
    if base & ADMINISTRATOR or base == ALL:
        return ALL
    bits = base
    everyone = overwrites.get(guild_id)
    if everyone is not None:
        bits = (bits & ~everyone.deny) | everyone.allow
    allow = deny = 0
    for role_id in member_roles:
        overwrite = overwrites.get(role_id)
        if overwrite is not None and overwrite.type == 0:
            allow |= overwrite.allow
            deny |= overwrite.deny
    bits = (bits & ~deny) | allow
    own = overwrites.get(member_id)
    if own is not None and own.type == 1:
        bits = (bits & ~own.deny) | own.allow
    return bits if bits & VIEW_CHANNEL else 0
