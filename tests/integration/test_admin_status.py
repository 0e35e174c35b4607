"""`main.py status`: operators see what is stuck, worst first, with the service's message."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from core.admin.status import overview, render_text
from core.db.models import SyncState
from core.db.session import SessionFactory
from core.engine.running.outbox import mark_owed


async def test_overview_lists_keys_that_need_attention_first(
    session_factory: SessionFactory,
) -> None:
    now = datetime.now(UTC)
    async with session_factory() as session, session.begin():
        await mark_owed(session, [1, 2], now)
        await session.execute(
            update(SyncState)
            .where(SyncState.sync_type == "discord", SyncState.group_id == 2)
            .values(
                status="needs_attention",
                attempt=7,
                failing_since=now,
                last_error="Discord 404 (10003): Unknown Channel",
            )
        )
        await session.execute(
            update(SyncState)
            .where(SyncState.sync_type == "calendar", SyncState.group_id == 1)
            .values(status="ok", completed_generation=SyncState.requested_generation)
        )

    view = await overview(session_factory)

    assert view.counts == {"needs_attention": 1, "ok": 1, "pending": 6}
    first = view.attention[0]
    assert (first.sync_type, first.group_id, first.attempt) == ("discord", 2, 7)
    assert "Unknown Channel" in render_text(view)
    assert len(view.attention) == 7
