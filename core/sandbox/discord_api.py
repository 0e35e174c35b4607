"""The Discord REST endpoints groupsync uses: route table and handlers.

A handler takes the state, the path parameters and the JSON body, and returns
(status, JSON or None). Errors are raised as ``DiscordError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.sandbox import discord_mentions as mentions
from core.sandbox import discord_payloads as payloads
from core.sandbox.discord_errors import invalid_field
from core.sandbox.discord_state import (
    MAX_CONTENT,
    MAX_NONCE,
    MENTION_EVERYONE,
    Channel,
    DiscordState,
    now_iso,
)
from core.sandbox.routing import RouteTable
from core.sandbox.snowflake import new_snowflake

Result = tuple[int, Any]


class Context:
    """Everything a handler may use for one request."""

    def __init__(self, state: DiscordState, params: dict[str, str], body: Any, now: float,
                 nonce_window: float, query: dict[str, str] | None = None,
                 gateway_bot: Callable[[], dict[str, Any]] | None = None) -> None:
        self.state = state
        self.params = params
        self.body = body if isinstance(body, dict) else {}
        self.now = now
        self.nonce_window = nonce_window  # real seconds (already scaled)
        self.query = query or {}
        self.gateway_bot = gateway_bot  # the GET /gateway/bot body, from the gateway


ROUTES = RouteTable([
    ("GET", "/users/@me", "get_me"),
    ("POST", "/users/@me/channels", "create_dm"),
    ("GET", "/oauth2/applications/@me", "get_application"),
    ("GET", "/gateway/bot", "get_gateway_bot"),
    ("GET", "/users/{user_id}", "get_user"),
    ("GET", "/channels/{channel_id}", "get_channel"),
    ("PUT", "/channels/{channel_id}/permissions/{target}", "put_overwrite"),
    ("DELETE", "/channels/{channel_id}/permissions/{target}", "delete_overwrite"),
    ("POST", "/channels/{channel_id}/messages", "create_message"),
    ("GET", "/channels/{channel_id}/messages", "list_messages"),
    ("GET", "/guilds/{guild_id}", "get_guild"),
    ("GET", "/guilds/{guild_id}/roles", "get_roles"),
    ("GET", "/guilds/{guild_id}/members/{user_id}", "get_member"),
    ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", "add_member_role"),
    ("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", "remove_member_role"),
])


def get_me(ctx: Context) -> Result:
    return 200, payloads.current_user(ctx.state.bot)


def get_application(ctx: Context) -> Result:
    return 200, payloads.application(ctx.state)


def get_gateway_bot(ctx: Context) -> Result:
    assert ctx.gateway_bot is not None
    return 200, ctx.gateway_bot()


def get_user(ctx: Context) -> Result:
    return 200, payloads.user(ctx.state.user(ctx.params["user_id"]))


def get_channel(ctx: Context) -> Result:
    channel = ctx.state.channel(ctx.params["channel_id"])
    if channel.type != 1:
        channel = ctx.state.visible_channel(channel.id)
    return 200, payloads.channel(ctx.state, channel)


def put_overwrite(ctx: Context) -> Result:
    ctx.state.put_overwrite(ctx.params["channel_id"], ctx.params["target"], ctx.body)
    return 204, None


def delete_overwrite(ctx: Context) -> Result:
    ctx.state.delete_overwrite(ctx.params["channel_id"], ctx.params["target"])
    return 204, None


def get_guild(ctx: Context) -> Result:
    return 200, payloads.guild(ctx.state.guild(ctx.params["guild_id"]))


def get_roles(ctx: Context) -> Result:
    guild = ctx.state.guild(ctx.params["guild_id"])
    return 200, [payloads.role(r) for r in guild.roles.values()]


def get_member(ctx: Context) -> Result:
    guild = ctx.state.guild(ctx.params["guild_id"])
    return 200, payloads.member(ctx.state, ctx.state.member(guild, ctx.params["user_id"]))


def add_member_role(ctx: Context) -> Result:
    p = ctx.params
    ctx.state.change_member_role(p["guild_id"], p["user_id"], p["role_id"], add=True)
    return 204, None


def remove_member_role(ctx: Context) -> Result:
    p = ctx.params
    ctx.state.change_member_role(p["guild_id"], p["user_id"], p["role_id"], add=False)
    return 204, None


def create_dm(ctx: Context) -> Result:
    return 200, payloads.channel(ctx.state, ctx.state.open_dm(ctx.body.get("recipient_id")))


def create_message(ctx: Context) -> Result:
    state, body = ctx.state, ctx.body
    channel = state.channel(ctx.params["channel_id"])
    content = body.get("content") or ""
    if len(content) > MAX_CONTENT:
        raise invalid_field("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    if not content and not body.get("embeds"):
        raise invalid_field("content", "BASE_TYPE_REQUIRED", "Cannot send an empty message")
    nonce = body.get("nonce")
    if nonce is not None and len(str(nonce)) > MAX_NONCE:
        raise invalid_field("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    allowed = mentions.allowed_from(body)
    state.check_can_post(channel)
    key = (state.bot.id, str(nonce))
    if nonce is not None and body.get("enforce_nonce"):
        seen = state.nonces.get(key)
        if seen is not None and ctx.now - seen[0] < ctx.nonce_window:
            return 200, seen[1]
    pinged = _pings(state, channel, content, allowed)
    message = _message(state, channel.id, content, body)
    message.update(
        mention_everyone=pinged.everyone,
        mentions=[payloads.user(state.users[u]) for u in pinged.users],
        mention_roles=list(pinged.roles),
    )
    state.pings.append({"message_id": message["id"], "channel_id": channel.id,
                        "everyone": pinged.everyone, "users": list(pinged.users),
                        "roles": list(pinged.roles)})
    state.messages.setdefault(channel.id, []).append(message)
    if nonce is not None:
        state.nonces[key] = (ctx.now, message)
    return 200, message


def list_messages(ctx: Context) -> Result:
    """GET /channels/{id}/messages: newest first, ``limit`` 1-100 (default 50), at most one
    of ``before`` / ``after`` (snowflakes). With ``after``, the messages right after that id
    (the oldest ones), still newest first, as Discord answers. No ``nonce`` in the listing:
    Discord returns it only to the create call."""
    channel = ctx.state.visible_channel(ctx.params["channel_id"])
    limit = _int_query(ctx.query, "limit", 50)
    if not 1 <= limit <= 100:
        raise invalid_field("limit", "NUMBER_TYPE_MAX", "int value should be <= 100 and >= 1.")
    before, after = _int_query(ctx.query, "before", 0), _int_query(ctx.query, "after", 0)
    stored = ctx.state.messages.get(channel.id, [])
    if after:
        picked = [m for m in stored if int(m["id"]) > after][:limit]
    else:
        picked = [m for m in stored if not before or int(m["id"]) < before][-limit:]
    return 200, [{k: v for k, v in m.items() if k != "nonce"} for m in reversed(picked)]


def _int_query(query: dict[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise invalid_field(name, "NUMBER_TYPE_COERCE", f"Value \"{value}\" is not int.") from None


def _pings(state: DiscordState, channel: Channel, content: str,
           allowed: mentions.Allowed) -> mentions.Pings:
    if channel.guild_id is None:  # a DM: only its recipient could be mentioned
        return mentions.pings(content, allowed, known_users={channel.recipient_id or ""},
                              mentionable_roles=set(), known_roles=set(),
                              can_mention_everyone=False)
    guild = state.guild(channel.guild_id)
    return mentions.pings(
        content, allowed,
        known_users=set(guild.members),
        mentionable_roles={r.id for r in guild.roles.values() if r.mentionable},
        known_roles=set(guild.roles) - {guild.id},
        can_mention_everyone=bool(state.bot_permissions_in(channel) & MENTION_EVERYONE),
    )


def _message(
    state: DiscordState, channel_id: str, content: str, body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": new_snowflake(), "channel_id": channel_id, "type": 0, "content": content,
        "author": payloads.user(state.bot), "timestamp": now_iso(), "edited_timestamp": None,
        "tts": bool(body.get("tts", False)), "mention_everyone": False, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": body.get("embeds") or [],
        "pinned": False, "flags": 0, "components": [], "nonce": body.get("nonce"),
    }


HANDLERS: dict[str, Callable[[Context], Result]] = {
    "get_me": get_me, "get_application": get_application, "get_user": get_user,
    "get_gateway_bot": get_gateway_bot,
    "get_channel": get_channel, "put_overwrite": put_overwrite,
    "delete_overwrite": delete_overwrite, "create_message": create_message,
    "list_messages": list_messages,
    "get_guild": get_guild, "get_roles": get_roles, "get_member": get_member,
    "add_member_role": add_member_role, "remove_member_role": remove_member_role,
    "create_dm": create_dm,
}
