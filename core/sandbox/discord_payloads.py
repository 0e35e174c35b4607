"""JSON objects in the shape Discord sends them (and discord.py parses them)."""

from __future__ import annotations

from typing import Any

from core.sandbox.discord_state import Channel, DiscordState, Guild, Member, Role, User


def user(u: User) -> dict[str, Any]:
    return {
        "id": u.id, "username": u.username, "discriminator": "0", "global_name": None,
        "avatar": None, "bot": u.bot, "public_flags": 0,
    }


def current_user(u: User) -> dict[str, Any]:
    return {**user(u), "flags": 0, "mfa_enabled": False, "verified": True, "locale": "en-US"}


def application(state: DiscordState) -> dict[str, Any]:
    return {
        "id": state.application_id, "name": state.bot.username, "icon": None,
        "description": "", "summary": "", "bot_public": False,
        "bot_require_code_grant": False, "verify_key": "0" * 64, "flags": 0,
        "owner": user(state.owner), "team": None, "bot": user(state.bot),
    }


def role(r: Role) -> dict[str, Any]:
    return {
        "id": r.id, "name": r.name, "color": 0, "colors": {"primary_color": 0},
        "hoist": False, "icon": None, "unicode_emoji": None, "position": r.position,
        "permissions": str(r.permissions), "managed": False, "mentionable": r.mentionable,
        "flags": 0,
    }


def member(state: DiscordState, m: Member) -> dict[str, Any]:
    return {
        "user": user(state.users[m.user_id]), "nick": None, "avatar": None, "banner": None,
        "roles": list(m.roles), "joined_at": m.joined_at, "premium_since": None,
        "deaf": False, "mute": False, "flags": 0, "pending": False,
        "communication_disabled_until": None,
    }


def guild(g: Guild) -> dict[str, Any]:
    return {
        "id": g.id, "name": g.name, "icon": None, "splash": None, "discovery_splash": None,
        "owner_id": "0", "afk_channel_id": None, "afk_timeout": 300,
        "verification_level": 0, "default_message_notifications": 0,
        "explicit_content_filter": 0, "roles": [role(r) for r in g.roles.values()],
        "emojis": [], "stickers": [], "features": [], "mfa_level": 0,
        "application_id": None, "system_channel_id": None, "system_channel_flags": 0,
        "rules_channel_id": None, "vanity_url_code": None, "description": None,
        "banner": None, "premium_tier": 0, "preferred_locale": "en-US",
        "public_updates_channel_id": None, "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
    }


def channel(state: DiscordState, c: Channel) -> dict[str, Any]:
    if c.type == 1:
        return {
            "id": c.id, "type": 1, "last_message_id": None, "flags": 0,
            "recipients": [user(state.users[c.recipient_id or ""])],
        }
    data: dict[str, Any] = {
        "id": c.id, "type": c.type, "guild_id": c.guild_id, "name": c.name,
        "position": c.position, "parent_id": c.parent_id, "nsfw": False, "flags": 0,
        "permission_overwrites": [o.to_json() for o in c.overwrites.values()],
        "last_message_id": None, "rate_limit_per_user": 0,
    }
    if c.type == 0:
        data["topic"] = None
    if c.type == 2:
        data.update(bitrate=64000, user_limit=0, rtc_region=None)
    return data
