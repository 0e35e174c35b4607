"""How current the Calendar incremental sync is (issue 22): how many calendars have a
stored syncToken and how long ago the least recently listed one was applied. Read from
``calendar_sync_tokens``, so every process (the CLI's ``status``, a standby) says the same
as the active daemon."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core.admin.waiting import aware
from core.db.models import CalendarSyncToken
from core.db.session import SessionFactory


async def calendar_follow(session_factory: SessionFactory, now: datetime
                          ) -> dict[str, Any] | None:
    """``{"calendars", "oldest_listed_at", "lag_seconds"}``; None before any list."""
    async with session_factory() as session:
        count, oldest = (await session.execute(
            select(func.count(), func.min(CalendarSyncToken.synced_at)))).one()
    if not count or oldest is None:
        return None
    oldest = aware(oldest)
    return {"calendars": int(count), "oldest_listed_at": oldest.isoformat(),
            "lag_seconds": round(max(0.0, (aware(now) - oldest).total_seconds()), 3)}


def follow_words(follow: dict[str, Any] | None) -> list[str]:
    """"changes listed for 3 calendars, the oldest 12 s ago" for the status line."""
    if not follow:
        return []
    n = follow["calendars"]
    return [f"changes listed for {n} calendar{'s' if n != 1 else ''}, "
            f"the oldest {follow['lag_seconds']:.0f} s ago"]
