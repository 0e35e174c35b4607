"""The transactional outbox: marking sync keys owed inside the caller's transaction.

The row write uses the caller's session, so it commits or rolls back with the membership
change. On PostgreSQL a NOTIFY in the same transaction wakes the daemon at commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import SyncState, SyncStatus, SyncType
from core.db.session import dialect_name
from core.syncers import types

OUTBOX_CHANNEL = "groupsync_outbox"
MARK_BATCH = 1000  # keys per upsert statement (9 bound parameters each)


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
    # Imported here: the PostgreSQL dialect module is a slice of a SQLite CLI verb's start.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql as chosen
    else:
        from sqlalchemy.dialects import sqlite as chosen  # type: ignore[no-redef]
    # In slices: one statement's bound parameters are capped (PostgreSQL's protocol takes
    # 32,767; 4,000 keys in one statement were 36,000).
    for start in range(0, len(rows), MARK_BATCH):
        await session.execute(_upsert(chosen, rows[start : start + MARK_BATCH], now))
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})


def _upsert(chosen: Any, rows: list[dict[str, Any]], now: datetime) -> Any:
    stmt = chosen.insert(SyncState).values(rows)
    return stmt.on_conflict_do_update(
        index_elements=[SyncState.sync_type, SyncState.group_id],
        set_={
            "requested_generation": SyncState.requested_generation + 1,
            # A failing key keeps its status (and backoff) until it runs again. A held
            # key is planned again: the membership may have changed (the guard keeps a
            # rejected plan held while it has not).
            "status": case(
                (SyncState.status.in_([SyncStatus.OK.value, SyncStatus.HELD.value]),
                 SyncStatus.PENDING.value),
                else_=SyncState.status,
            ),
            # ... at once, not at its re-check (its run is a new plan, not a re-check:
            # the claim tells them apart by the due time this clears).
            "next_attempt_at": case(
                (SyncState.status == SyncStatus.HELD.value, None),
                else_=SyncState.next_attempt_at,
            ),
            "updated_at": now,
            # The oldest request still owed: commit → applied is timed from it.
            "requested_at": case(
                (SyncState.requested_generation > SyncState.completed_generation,
                 func.coalesce(SyncState.requested_at, now)),
                else_=now,
            ),
        },
    )


async def notify_owed(session: AsyncSession) -> None:
    """Wake every daemon's sweep at commit (PostgreSQL; SQLite's watcher sees the commit)."""
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
