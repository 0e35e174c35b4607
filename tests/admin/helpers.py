"""Rows for admin tests: failing keys as the engine would have left them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.db.models import SyncState
from core.db.session import SessionFactory
from tests.factories import make_group


async def failing_keys(sessions: SessionFactory, groups: int, sync_type: str = "discord",
                       *, attempt: int = 3, due_in: timedelta = timedelta(hours=1)
                       ) -> list[int]:
    """``groups`` groups whose ``sync_type`` key needs attention, next attempt far away."""
    now = datetime.now(UTC)
    ids = []
    async with sessions() as session, session.begin():
        for _ in range(groups):
            group = await make_group(session)
            ids.append(group.id)
            session.add(SyncState(
                sync_type=sync_type, group_id=group.id, status="needs_attention",
                requested_generation=1, completed_generation=0, attempt=attempt,
                next_attempt_at=now + due_in, last_error="Discord 403 (50001): Missing Access",
                error_kind="needs_attention", failing_since=now - timedelta(minutes=5),
                sentry_reported_level=1, updated_at=now,
            ))
    return ids


async def key_row(sessions: SessionFactory, sync_type: str, group_id: int) -> SyncState:
    async with sessions() as session:
        row = await session.scalar(select(SyncState).where(
            SyncState.sync_type == sync_type, SyncState.group_id == group_id))
    assert row is not None
    return row
