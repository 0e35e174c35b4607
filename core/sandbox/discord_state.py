"""What the fake Discord holds: guilds, roles, members, channels, overwrites, users, messages.

Operations here enforce Discord's rules and raise ``DiscordError``; they know
nothing about HTTP.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.sandbox.discord_errors import (
    CANNOT_MESSAGE_USER,
    MISSING_ACCESS,
    MISSING_PERMISSIONS,
    UNKNOWN_CHANNEL,
    UNKNOWN_GUILD,
    UNKNOWN_MEMBER,
    UNKNOWN_OVERWRITE,
    UNKNOWN_ROLE,
    UNKNOWN_USER,
    DiscordError,
    invalid_field,
)
from core.sandbox.discord_permissions import (
    MANAGE_ROLES,
    MENTION_EVERYONE,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    OverwriteBits,
    base_permissions,
    channel_permissions,
)
from core.sandbox.snowflake import new_snowflake, sid

__all__ = ["MANAGE_ROLES", "MENTION_EVERYONE", "SEND_MESSAGES", "VIEW_CHANNEL", "DiscordState"]
# What the bot's role grants unless a test says otherwise: text and voice basics,
# MANAGE_ROLES and MANAGE_CHANNELS, not ADMINISTRATOR.
DEFAULT_BOT_PERMISSIONS = (
    (1 << 4) | (1 << 6) | VIEW_CHANNEL | SEND_MESSAGES | (1 << 14) | (1 << 15) | (1 << 16)
    | (1 << 20) | (1 << 21) | MANAGE_ROLES
)
MAX_CONTENT = 2000
MAX_NONCE = 25


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class User:
    id: str
    username: str
    bot: bool = False
    accepts_dms: bool = True


@dataclass
class Role:
    id: str
    guild_id: str
    name: str
    position: int
    permissions: int = 0
    mentionable: bool = False


@dataclass
class Member:
    user_id: str
    roles: list[str] = field(default_factory=list)
    joined_at: str = field(default_factory=now_iso)


@dataclass
class Guild:
    id: str
    name: str
    bot_role_id: str
    bot_permissions: int
    roles: dict[str, Role] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)


@dataclass
class Overwrite:
    id: str
    type: int  # 0 role, 1 member
    allow: int
    deny: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class Channel:
    id: str
    type: int  # 0 text, 1 DM, 2 voice, 4 category
    name: str | None = None
    guild_id: str | None = None
    position: int = 0
    overwrites: dict[str, Overwrite] = field(default_factory=dict)
    bot_can_view: bool = True
    recipient_id: str | None = None
    parent_id: str | None = None  # the category (type 4) it sits in


class DiscordState:
    def __init__(self) -> None:
        self.bot = User(id=new_snowflake(), username="groupsync-sandbox", bot=True)
        self.owner = User(id=new_snowflake(), username="sandbox-owner")
        self.application_id = new_snowflake()
        self.users: dict[str, User] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, Channel] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.dm_channels: dict[str, str] = {}  # recipient user id -> DM channel id
        self.nonces: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        # Who each posted message pinged: {"message_id", "channel_id", "everyone",
        # "users", "roles"}, in posting order.
        self.pings: list[dict[str, Any]] = []
        # Called after every change a gateway session would hear about, with what changed:
        # ("channel_create" | "channel_update" | "channel_delete", Channel),
        # ("role_create" | "role_update", Role) or ("guild_create", Guild).
        self.observers: list[Callable[[str, Any], None]] = []

    def _changed(self, kind: str, obj: Any) -> None:
        for observer in self.observers:
            observer(kind, obj)

    # ---- seeding -----------------------------------------------------------------
    def add_guild(
        self,
        guild_id: int | str,
        *,
        name: str = "sandbox guild",
        bot_role_position: int = 10,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
    ) -> None:
        gid = sid(guild_id)
        guild = Guild(gid, name, bot_role_id=new_snowflake(), bot_permissions=bot_permissions)
        guild.roles[gid] = Role(gid, gid, "@everyone", 0, VIEW_CHANNEL | SEND_MESSAGES)
        guild.roles[guild.bot_role_id] = Role(
            guild.bot_role_id, gid, "groupsync", bot_role_position, bot_permissions
        )
        guild.members[self.bot.id] = Member(self.bot.id, [guild.bot_role_id])
        self.guilds[gid] = guild
        self._changed("guild_create", guild)

    def add_role(self, guild_id: int | str, role_id: int | str, position: int, *,
                 name: str | None = None, permissions: int = 0,
                 mentionable: bool = False) -> None:
        guild = self.guild(guild_id)
        rid = sid(role_id)
        guild.roles[rid] = Role(rid, guild.id, name or f"role-{rid}", position, permissions,
                                mentionable)
        self._changed("role_create", guild.roles[rid])

    def set_bot_permissions(self, guild_id: int | str, permissions: int) -> None:
        """What the bot's role grants in the guild (before channel overwrites)."""
        guild = self.guild(guild_id)
        guild.bot_permissions = permissions
        guild.roles[guild.bot_role_id].permissions = permissions
        self._changed("role_update", guild.roles[guild.bot_role_id])

    def add_channel(self, channel_id: int | str, guild_id: int | str, name: str, type: int = 0,
                    *, bot_can_view: bool = True, parent_id: int | str | None = None) -> None:
        guild = self.guild(guild_id)
        cid = sid(channel_id)
        parent = None if parent_id is None else sid(parent_id)
        if parent is not None and self.channel(parent).type != 4:
            raise ValueError(f"parent {parent} is not a category (type 4)")
        position = sum(1 for c in self.channels.values() if c.guild_id == guild.id)
        self.channels[cid] = Channel(cid, type, name, guild.id, position,
                                     bot_can_view=bot_can_view, parent_id=parent)
        self._changed("channel_create", self.channels[cid])

    def delete_channel(self, channel_id: int | str) -> None:
        gone = self.channels.pop(sid(channel_id), None)
        if gone is not None:
            self._changed("channel_delete", gone)

    def add_user(self, user_id: int | str, username: str, accepts_dms: bool = True) -> None:
        uid = sid(user_id)
        self.users[uid] = User(uid, username, accepts_dms=accepts_dms)

    def add_member(self, guild_id: int | str, user_id: int | str) -> None:
        guild = self.guild(guild_id)
        uid = sid(user_id)
        if uid not in self.users:
            self.add_user(uid, f"user-{uid}")
        guild.members.setdefault(uid, Member(uid))

    def remove_member(self, guild_id: int | str, user_id: int | str) -> None:
        self.guild(guild_id).members.pop(sid(user_id), None)

    def set_foreign_overwrite(self, channel_id: int | str, target_id: int | str, type: int,
                              allow: int = 0, deny: int = 0) -> None:
        """An overwrite made by a person in the Discord UI (no permission checks)."""
        cid, tid = sid(channel_id), sid(target_id)
        channel = self.channel(cid)
        channel.overwrites[tid] = Overwrite(tid, type, allow, deny)
        self._changed("channel_update", channel)

    # ---- readers -----------------------------------------------------------------
    def overwrites(self, channel_id: int | str) -> dict[str, dict[str, Any]]:
        channel = self.channels[sid(channel_id)]
        return {
            tid: {"type": o.type, "allow": o.allow, "deny": o.deny}
            for tid, o in channel.overwrites.items()
        }

    def member_roles(self, guild_id: int | str, user_id: int | str) -> list[str]:
        return list(self.guilds[sid(guild_id)].members[sid(user_id)].roles)

    def channel_messages(self, channel_id: int | str) -> list[dict[str, Any]]:
        return list(self.messages.get(sid(channel_id), []))

    def dm_messages(self, user_id: int | str) -> list[dict[str, Any]]:
        cid = self.dm_channels.get(sid(user_id))
        return [] if cid is None else self.channel_messages(cid)

    # ---- lookups raising API errors -----------------------------------------------
    def guild(self, guild_id: int | str) -> Guild:
        guild = self.guilds.get(str(guild_id))
        if guild is None:
            raise DiscordError(UNKNOWN_GUILD)
        return guild

    def channel(self, channel_id: int | str) -> Channel:
        channel = self.channels.get(str(channel_id))
        if channel is None:
            raise DiscordError(UNKNOWN_CHANNEL)
        return channel

    def visible_channel(self, channel_id: str) -> Channel:
        channel = self.channel(channel_id)
        if not self.bot_permissions_in(channel) & VIEW_CHANNEL:
            raise DiscordError(MISSING_ACCESS)
        return channel

    def bot_permissions_in(self, channel: Channel) -> int:
        """The bot's permissions in a guild channel: roles, then category and channel
        overwrites (``discord_permissions``)."""
        guild = self.guild(channel.guild_id or "")
        member = guild.members[self.bot.id]
        base = base_permissions(
            guild.roles[guild.id].permissions,
            [guild.roles[r].permissions for r in member.roles if r in guild.roles],
        )
        overwrites: dict[str, OverwriteBits] = {}
        parent = self.channels.get(channel.parent_id or "")
        for source in ([parent] if parent is not None else []) + [channel]:
            overwrites.update(
                {k: OverwriteBits(o.type, o.allow, o.deny) for k, o in source.overwrites.items()}
            )
        bits = channel_permissions(base, guild.id, self.bot.id, member.roles, overwrites)
        return bits if channel.bot_can_view else bits & ~VIEW_CHANNEL

    def user(self, user_id: str) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise DiscordError(UNKNOWN_USER)
        return user

    def member(self, guild: Guild, user_id: str) -> Member:
        member = guild.members.get(user_id)
        if member is None:
            raise DiscordError(UNKNOWN_MEMBER)
        return member

    def role(self, guild: Guild, role_id: str) -> Role:
        role = guild.roles.get(role_id)
        if role is None:
            raise DiscordError(UNKNOWN_ROLE)
        return role

    # ---- operations ------------------------------------------------------------------
    def put_overwrite(self, channel_id: str, target: str, body: dict[str, Any]) -> None:
        channel = self.visible_channel(channel_id)
        guild = self.guild(channel.guild_id or "")
        kind = body.get("type")
        if kind not in (0, 1, "0", "1"):
            raise invalid_field("type", "BASE_TYPE_CHOICES", "Value must be one of {0, 1}.")
        allow, deny = _bits(body, "allow"), _bits(body, "deny")
        # MANAGE_ROLES in this channel, and only bits the bot holds here itself: a
        # channel or category overwrite denying the bot counts as much as its role.
        held = self.bot_permissions_in(channel)
        if not held & MANAGE_ROLES or (allow | deny) & ~held:
            raise DiscordError(MISSING_PERMISSIONS)
        if int(kind) == 0:
            self.role(guild, target)
        else:
            self.user(target)
        channel.overwrites[target] = Overwrite(target, int(kind), allow, deny)
        self._changed("channel_update", channel)

    def delete_overwrite(self, channel_id: str, target: str) -> None:
        channel = self.visible_channel(channel_id)
        if not self.bot_permissions_in(channel) & MANAGE_ROLES:
            raise DiscordError(MISSING_PERMISSIONS)
        if channel.overwrites.pop(target, None) is None:
            raise DiscordError(UNKNOWN_OVERWRITE)
        self._changed("channel_update", channel)

    def change_member_role(self, guild_id: str, user_id: str, role_id: str, add: bool) -> None:
        guild = self.guild(guild_id)
        member = self.member(guild, user_id)
        role = self.role(guild, role_id)
        bot_top = guild.roles[guild.bot_role_id].position
        if not guild.bot_permissions & MANAGE_ROLES or role.position >= bot_top:
            raise DiscordError(MISSING_PERMISSIONS)
        if add and role_id not in member.roles:
            member.roles.append(role_id)
        if not add and role_id in member.roles:
            member.roles.remove(role_id)

    def open_dm(self, recipient_id: Any) -> Channel:
        if recipient_id is None:
            raise invalid_field("recipient_id", "BASE_TYPE_REQUIRED", "This field is required")
        user = self.user(str(recipient_id))
        cid = self.dm_channels.get(user.id)
        if cid is None:
            cid = new_snowflake()
            self.channels[cid] = Channel(cid, 1, recipient_id=user.id)
            self.dm_channels[user.id] = cid
        return self.channels[cid]

    def check_can_post(self, channel: Channel) -> None:
        if channel.type == 1:
            recipient = self.user(channel.recipient_id or "")
            if not recipient.accepts_dms:
                raise DiscordError(CANNOT_MESSAGE_USER)
            return
        held = self.bot_permissions_in(channel)
        if not held & VIEW_CHANNEL:
            raise DiscordError(MISSING_ACCESS)
        if not held & SEND_MESSAGES:
            raise DiscordError(MISSING_PERMISSIONS)


def _bits(body: dict[str, Any], name: str) -> int:
    value = body.get(name, "0")
    if value is None:
        return 0
    try:
        bits = int(value)
    except (TypeError, ValueError):
        raise invalid_field(name, "NUMBER_TYPE_COERCE", f"Value \"{value}\" is not int.") from None
    if bits < 0:
        raise invalid_field(name, "NUMBER_TYPE_MIN", "int value should be >= 0.")
    return bits
