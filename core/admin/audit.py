"""Every operator action leaves a trail: one ``admin_action`` log line (what, on which
scope, through which interface) and one ``admin_actions`` row (who, what, when, result)
that the dashboard's audit view reads.

The row is written after the action, in its own short transaction: the action has
happened by then, and a row that could not be written (the database blinked) must not
turn it into an error, so that failure is one warning line instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select

from core.db.models import AdminAction
from core.db.session import SessionFactory
from core.observability import get_logger

log = get_logger("groupsync.admin")

MAX_SHOWN = 200
# Operator actions are few, but a script may retry keys by the thousand: rows older than
# this go as new ones come (one indexed DELETE beside each INSERT).
KEEP = timedelta(days=90)
DETAIL_LENGTH = 1000


def audit(action: str, scope: dict[str, Any], via: str, **outcome: Any) -> None:
    log.info("admin_action", action=action, scope=scope, via=via, **outcome)


def actor(via: str, who: str | None) -> str:
    """Who acted, as the trail names it: the interface, and the caller where known
    (an address for the API and the page, user@host for the CLI)."""
    return f"{via}:{who}" if who else via


def detail_of(fields: dict[str, Any]) -> str | None:
    """The action's own facts (a reason, a job, a count) as one short line."""
    shown = [f"{k}={v}" for k, v in fields.items()
             if v is not None and v != "" and k != "at"]  # the row has its own time
    return "; ".join(shown)[:DETAIL_LENGTH] or None


async def record(session_factory: SessionFactory, *, action: str, scope: dict[str, Any],
                 via: str, who: str, at: datetime, outcome: str, detail: str | None) -> None:
    try:
        async with session_factory() as session, session.begin():
            await session.execute(insert(AdminAction).values(
                at=at, action=action[:32], via=via[:16], who=who[:200], scope=scope,
                outcome=outcome[:16], detail=detail))
            await session.execute(delete(AdminAction).where(AdminAction.at < at - KEEP))
    except Exception as exc:  # the action happened; only its row is missing
        log.warning("admin_action_not_recorded", action=action, error=type(exc).__name__)


def action_json(row: AdminAction) -> dict[str, Any]:
    return {"id": row.id, "at": row.at.isoformat(), "action": row.action, "via": row.via,
            "who": row.who, "scope": row.scope, "outcome": row.outcome, "detail": row.detail}


async def recent(session_factory: SessionFactory, limit: int = 50,
                 before_id: int | None = None) -> list[dict[str, Any]]:
    """The newest operator actions first (``before_id`` pages back)."""
    query = select(AdminAction).order_by(AdminAction.id.desc()).limit(min(limit, MAX_SHOWN))
    if before_id is not None:
        query = query.where(AdminAction.id < before_id)
    async with session_factory() as session:
        rows = (await session.scalars(query)).all()
    return [action_json(r) for r in rows]
