"""What is stuck and why: the read side shared by the CLI (and a future HTTP API)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.db.models import SyncState, SyncStatus
from core.db.session import SessionFactory


@dataclass(frozen=True)
class KeyStatus:
    sync_type: str
    group_id: int
    status: str
    attempt: int
    owed: bool
    next_attempt_at: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]  # keys per status
    attention: list[KeyStatus]  # everything not ok, worst first

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "attention": [k.to_json() for k in self.attention]}


_SEVERITY = {
    SyncStatus.NEEDS_ATTENTION.value: 0,
    SyncStatus.RETRYING.value: 1,
    SyncStatus.RUNNING.value: 2,
    SyncStatus.PENDING.value: 3,
}


async def overview(session_factory: SessionFactory) -> Overview:
    async with session_factory() as session:
        rows = (await session.execute(select(SyncState))).scalars().all()
    counts = Counter(r.status for r in rows)
    attention = [
        KeyStatus(
            r.sync_type,
            r.group_id,
            r.status,
            r.attempt,
            r.requested_generation > r.completed_generation,
            r.next_attempt_at,
            r.failing_since,
            r.last_success_at,
            r.last_error,
        )
        for r in rows
        if r.status != SyncStatus.OK.value
    ]
    attention.sort(key=lambda k: (_SEVERITY.get(k.status, 9), -k.attempt, k.group_id))
    return Overview(dict(sorted(counts.items())), attention)


def render_text(view: Overview) -> str:
    if not view.counts:
        return "no sync has been requested yet"
    lines = ["keys: " + ", ".join(f"{n} {status}" for status, n in view.counts.items())]
    for k in view.attention:
        since = f" failing since {k.failing_since:%Y-%m-%d %H:%M:%S}Z" if k.failing_since else ""
        due = f", next attempt {k.next_attempt_at:%H:%M:%S}Z" if k.next_attempt_at else ""
        lines.append(f"{k.status:15} {k.sync_type}:{k.group_id} attempt {k.attempt}{since}{due}")
        if k.last_error:
            lines.append(f"{'':15} {k.last_error}")
    return "\n".join(lines)
