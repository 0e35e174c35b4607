"""The needs-attention set: keys an operator must act on, searchable, acknowledged with a
note (issue 23).

A key is in the set from its first needs-attention failure (``attention_since``, written
by the engine's failure record) until any other outcome; a key whose row says
``needs_attention`` without that time (written before it existed) is in it too. An
acknowledgement (who, when, note) is on the key's row: every operator sees it, and the
engine's next success record clears it in the UPDATE it runs anyway.

Search is one case-insensitive substring over what an operator has in hand: the key's
last error (the service's words, which name channel, calendar and user ids), the group's
name and its Discord and calendar ids, its members' (current or former) Discord ids,
e-mails and names, the acknowledgement's note, the sync type and its service; a number
is also the group id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, literal, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from core.admin.control import require_positive
from core.admin.errors import Conflict, Invalid, NotFound
from core.admin.keys import MAX_LIMIT, WaitContext, key_item, parse_sync_type
from core.db.groups import unknown_groups
from core.db.models import Group, Membership, SyncState, SyncStatus, User
from core.db.session import SessionFactory
from core.syncers import types

MAX_QUERY = 200
MAX_NOTE = 500


def in_attention() -> ColumnElement[bool]:
    return or_(SyncState.status == SyncStatus.NEEDS_ATTENTION.value,
               SyncState.attention_since.is_not(None))


def entered() -> Any:
    """When the key entered the set (the best the row knows for an old one)."""
    return func.coalesce(SyncState.attention_since, SyncState.failing_since,
                         SyncState.updated_at)


def _types_named(needle: str) -> list[str]:
    found = []
    for spec in types.registered():
        words = [spec.name, spec.label, spec.service or "",
                 types.service_label(spec.service) if spec.service else ""]
        if any(needle in word.lower() for word in words if word):
            found.append(spec.name)
    return found


def matching(text: str) -> ColumnElement[bool]:
    """The search: ``text`` as a case-insensitive substring of any field above."""
    needle = text.strip().lower()

    def has(column: Any) -> ColumnElement[bool]:
        return func.lower(column).contains(needle, autoescape=True)

    member = exists().where(
        Membership.group_id == SyncState.group_id, Membership.user_id == User.id,
        or_(has(User.discord_user_id), has(User.email), has(User.display_name)))
    found = [has(SyncState.last_error), has(SyncState.ack_note), has(Group.name),
             has(Group.discord_guild_id), has(Group.discord_text_channel_id),
             has(Group.discord_voice_channel_id), has(Group.discord_role_id),
             has(Group.calendar_id), member]
    named = _types_named(needle)
    if named:
        found.append(SyncState.sync_type.in_(named))
    if needle.isdigit() and len(needle) < 10:
        found.append(SyncState.group_id == int(needle))
    return or_(*found)


@dataclass(frozen=True)
class AttentionQuery:
    text: str | None = None
    since: datetime | None = None  # "new since": entered the set after this moment
    limit: int = 50
    offset: int = 0

    def check(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise Invalid(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.offset < 0:
            raise Invalid(f"offset must not be negative, got {self.offset}")
        if self.text is not None and len(self.text) > MAX_QUERY:
            raise Invalid(f"the search text is at most {MAX_QUERY} characters")

    def conditions(self) -> list[ColumnElement[bool]]:
        found = [in_attention()]
        if self.text and self.text.strip():
            found.append(matching(self.text))
        return found


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def attention_item(row: SyncState, group_name: str | None, since: datetime | None,
                   context: WaitContext | None) -> dict[str, Any]:
    from core.admin.waiting import aware

    at = aware(row.attention_since or row.failing_since or row.updated_at)
    return {
        **key_item(row, context),  # its acknowledgement included
        "group_name": group_name,
        "attention_since": _iso(at),
        "new": bool(since is not None and at is not None and at > since),
    }


async def list_attention(session_factory: SessionFactory, query: AttentionQuery,
                         context: WaitContext | None = None) -> dict[str, Any]:
    query.check()
    conditions = query.conditions()
    joined = select(SyncState, Group.name).outerjoin(Group, Group.id == SyncState.group_id)
    async with session_factory() as session:
        total = await session.scalar(
            select(func.count()).select_from(SyncState)
            .outerjoin(Group, Group.id == SyncState.group_id).where(*conditions))
        rows = (await session.execute(
            joined.where(*conditions)
            .order_by(SyncState.ack_at.is_not(None), entered().desc(),
                      SyncState.sync_type, SyncState.group_id)
            .limit(query.limit).offset(query.offset))).all()
        counts = await _counts(session, query.since)
    return {
        "items": [attention_item(r, name, query.since, context) for r, name in rows],
        "total": int(total or 0), "limit": query.limit, "offset": query.offset,
        "search": query.text or None, "since": _iso(query.since),
        "counts": counts,
    }


async def _counts(session: Any, since: datetime | None) -> dict[str, int | None]:
    """The whole set (whatever the search): how many, acknowledged, new since ``since``."""
    new = func.count().filter(entered() > since) if since is not None else literal(0)
    total, acked, fresh = (await session.execute(
        select(func.count(), func.count(SyncState.ack_at), new).select_from(SyncState)
        .where(in_attention()))).one()
    return {"total": int(total or 0), "acknowledged": int(acked or 0),
            "new_since": int(fresh or 0) if since is not None else None}


async def acknowledge(session_factory: SessionFactory, sync_type: str, group_id: int,
                      note: str, who: str, now: datetime) -> dict[str, Any]:
    """An operator has seen the key and says what is being done (a note every operator
    sees). One UPDATE that matches only a key in the set, so a key that just succeeded
    (and left it) is never acknowledged after the fact."""
    kind = parse_sync_type(sync_type)
    require_positive(group_id)
    text = (note or "").strip()
    if not text:
        raise Invalid("an acknowledgement needs a note: what is being done about it")
    if len(text) > MAX_NOTE:
        raise Invalid(f"the note is at most {MAX_NOTE} characters")
    async with session_factory() as session, session.begin():
        result = await session.execute(
            update(SyncState)
            .where(SyncState.sync_type == kind, SyncState.group_id == group_id,
                   in_attention())
            .values(ack_by=who[:200], ack_at=now, ack_note=text)
            .execution_options(synchronize_session=False))
        if not getattr(result, "rowcount", 0):
            await _refuse(session, kind, group_id)
    return {"sync_type": kind, "group_id": group_id,
            "acknowledged": {"by": who[:200], "at": now.isoformat(), "note": text}}


async def _refuse(session: Any, kind: str, group_id: int) -> None:
    row = await session.get(SyncState, (kind, group_id))
    if row is None and await unknown_groups(session, [group_id]):
        raise NotFound(f"unknown group {group_id}: no such group and no sync key")
    if row is None:
        raise NotFound(f"no sync key {kind}:{group_id}")
    raise Conflict(f"{kind}:{group_id} is not in the needs-attention set (status "
                   f"{row.status}); nothing to acknowledge")
