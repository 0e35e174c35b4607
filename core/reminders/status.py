"""Reminders as the operator sees them: counts per status, then every reminder that is
retrying, in flight or missed, shown like a sync key (attempt, next attempt, last error,
failing since). The read side shared by the CLI's ``status`` (and the HTTP API)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core.db.models import ReminderDelivery, ReminderStatus
from core.db.session import SessionFactory

SHOWN = (ReminderStatus.RETRYING, ReminderStatus.SENDING, ReminderStatus.MISSED)
_SEVERITY = {s.value: n for n, s in enumerate(SHOWN)}
MISSED_SHOWN = 20  # missed reminders are final: the most recent ones are enough


@dataclass(frozen=True)
class ReminderItem:
    meeting_id: int
    offset_minutes: int
    group_id: int
    status: str
    due_at: datetime
    attempt: int
    next_attempt_at: datetime | None
    failing_since: datetime | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ReminderOverview:
    counts: dict[str, int]
    attention: list[ReminderItem]

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "attention": [i.to_json() for i in self.attention]}


async def reminder_overview(session_factory: SessionFactory) -> ReminderOverview:
    async with session_factory() as session:
        counts = Counter(
            dict((await session.execute(_count_by_status())).all())
        )
        rows = (
            await session.execute(
                select(ReminderDelivery).where(
                    ReminderDelivery.status.in_([s.value for s in SHOWN])
                )
            )
        ).scalars().all()
    items = [
        ReminderItem(r.meeting_id, r.offset_minutes, r.group_id, r.status, r.fire_at, r.attempt,
                     r.next_attempt_at, r.failing_since, r.last_error)
        for r in rows
    ]
    missed = sorted((i for i in items if i.status == ReminderStatus.MISSED),
                    key=lambda i: i.due_at, reverse=True)[:MISSED_SHOWN]
    live = [i for i in items if i.status != ReminderStatus.MISSED]
    live.sort(key=lambda i: (_SEVERITY.get(i.status, 9), -i.attempt, i.due_at))
    return ReminderOverview(dict(sorted(counts.items())), live + missed)


def _count_by_status() -> Any:
    return select(ReminderDelivery.status, func.count()).group_by(ReminderDelivery.status)


def render_reminders(view: dict[str, Any]) -> str:
    """Text lines for ``ReminderOverview.to_json()`` (what the API returns, too)."""
    if not view.get("counts"):
        return "reminders: none planned yet"
    counts = ", ".join(f"{n} {status}" for status, n in view["counts"].items())
    lines = [f"reminders: {counts}"]
    for i in view["attention"]:
        since = f" failing since {i['failing_since']}" if i["failing_since"] else ""
        due = f", next attempt {i['next_attempt_at']}" if i["next_attempt_at"] else ""
        lines.append(
            f"{i['status']:15} reminder meeting {i['meeting_id']} -{i['offset_minutes']}m "
            f"(group {i['group_id']}, due {i['due_at']}) attempt {i['attempt']}{since}{due}"
        )
        if i["last_error"]:
            lines.append(f"{'':15} {i['last_error']}")
    return "\n".join(lines)
