"""Which mentions in a message's content would ping, under ``allowed_mentions``.

Discord parses ``@everyone``/``@here``, ``<@id>``/``<@!id>`` and ``<@&id>`` in content;
without ``allowed_mentions`` all of them ping (docs: resources/message, "Allowed
Mentions Object"). With it, ``parse`` names the kinds parsed from content and ``users`` /
``roles`` list ids allowed explicitly (a kind in ``parse`` and a list of it together are
a 400). A ping also needs permission: @everyone/@here and non-mentionable roles need
MENTION_EVERYONE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.sandbox.discord_errors import invalid_field

EVERYONE = re.compile(r"@(everyone|here)\b")
USER = re.compile(r"<@!?(\d{1,20})>")
ROLE = re.compile(r"<@&(\d{1,20})>")
KINDS = ("everyone", "users", "roles")


@dataclass(frozen=True)
class Allowed:
    parse: frozenset[str]
    users: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()


@dataclass
class Pings:
    everyone: bool = False
    users: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)


def allowed_from(body: dict[str, Any]) -> Allowed:
    raw = body.get("allowed_mentions")
    if raw is None:
        return Allowed(frozenset(KINDS))
    if not isinstance(raw, dict):
        raise invalid_field("allowed_mentions", "DICT_TYPE_CONVERT", "Only dictionaries may "
                            "be used in a DictType")
    parse = frozenset(str(p) for p in raw.get("parse") or [])
    if parse - set(KINDS):
        raise invalid_field("allowed_mentions", "BASE_TYPE_CHOICES",
                            "Value must be one of ('everyone', 'users', 'roles').")
    users = frozenset(str(u) for u in raw.get("users") or [])
    roles = frozenset(str(r) for r in raw.get("roles") or [])
    if ("users" in parse and users) or ("roles" in parse and roles):
        raise invalid_field("allowed_mentions", "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                            "parse:[\"users\"] and users: [ids...] are mutually exclusive.")
    return Allowed(parse, users, roles)


def pings(
    content: str,
    allowed: Allowed,
    *,
    known_users: set[str],
    mentionable_roles: set[str],
    known_roles: set[str],
    can_mention_everyone: bool,
) -> Pings:
    result = Pings()
    if EVERYONE.search(content) and "everyone" in allowed.parse and can_mention_everyone:
        result.everyone = True
    for user_id in dict.fromkeys(USER.findall(content)):
        if user_id in known_users and ("users" in allowed.parse or user_id in allowed.users):
            result.users.append(user_id)
    for role_id in dict.fromkeys(ROLE.findall(content)):
        if role_id not in known_roles:
            continue
        if not ("roles" in allowed.parse or role_id in allowed.roles):
            continue
        if role_id in mentionable_roles or can_mention_everyone:
            result.roles.append(role_id)
    return result
