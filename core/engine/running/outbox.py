"""The transactional outbox: marking sync keys owed inside the caller's transaction.

The row write uses the caller's session, so it commits or rolls back with the membership
change. On PostgreSQL a NOTIFY in the same transaction wakes the daemon at commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Table, case, func, or_, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import SyncState, SyncStatus, SyncType
from core.db.session import dialect_name
from core.syncers import types

OUTBOX_CHANNEL = "groupsync_outbox"


async def mark_owed(
    session: AsyncSession,
    group_ids: Iterable[int],
    now: datetime,
    sync_types: Iterable[SyncType] | None = None,
) -> None:
    """Bump the requested generation of every (type, group) key (every registered type
    unless ``sync_types`` says which); create missing rows."""
    if sync_types is None:
        sync_types = types.names()
    rows = [
        {
            "sync_type": sync_type,
            "group_id": group_id,
            "status": SyncStatus.PENDING.value,
            "requested_generation": 1,
            "completed_generation": 0,
            "attempt": 0,
            "sentry_reported_level": 0,
            "updated_at": now,
            "requested_at": now,
        }
        for group_id in dict.fromkeys(group_ids)
        for sync_type in sync_types
    ]
    if not rows:
        return
    dialect = dialect_name(session)
    # One statement with bound parameters, run once per key (executemany): building a
    # multi-row VALUES through the ORM was most of a membership change's CPU (6 ms of a
    # switch_group's 10), and one statement's parameters are capped (PostgreSQL's protocol
    # takes 32,767; 4,000 keys in one VALUES were 36,000).
    await session.execute(_upsert(dialect), rows)
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})


@cache
def _upsert(dialect: str) -> Any:
    # Imported here: the PostgreSQL dialect module is a slice of a SQLite CLI verb's start.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql as chosen
    else:
        from sqlalchemy.dialects import sqlite as chosen  # type: ignore[no-redef]
    table: Table = SyncState.__table__  # type: ignore[assignment]
    stmt = chosen.insert(table)
    row, new = table.c, stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[row.sync_type, row.group_id],
        set_={
            "requested_generation": row.requested_generation + 1,
            # A failing key keeps its status (and backoff) until it runs again. A held
            # key is planned again: the membership may have changed (the guard keeps a
            # rejected plan held while it has not).
            "status": case(
                # (two comparisons: an IN list is expanded per execution, which
                # executemany cannot do)
                (or_(row.status == SyncStatus.OK.value, row.status == SyncStatus.HELD.value),
                 SyncStatus.PENDING.value),
                else_=row.status,
            ),
            # ... at once, not at its re-check (its run is a new plan, not a re-check:
            # the claim tells them apart by the due time this clears).
            "next_attempt_at": case(
                (row.status == SyncStatus.HELD.value, None),
                else_=row.next_attempt_at,
            ),
            "updated_at": new.updated_at,
            # The oldest request still owed: commit → applied is timed from it.
            "requested_at": case(
                (row.requested_generation > row.completed_generation,
                 func.coalesce(row.requested_at, new.requested_at)),
                else_=new.requested_at,
            ),
        },
    )


async def notify_owed(session: AsyncSession) -> None:
    """Wake every daemon's sweep at commit (PostgreSQL; SQLite's watcher sees the commit)."""
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
