"""Stand-in syncers behind the final interface: they read the group and change nothing.

The integration work replaces them with the real Discord, Calendar, reminder and RSVP
syncers; the engine around them is already complete.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from core.db.models import Meeting, Membership, SyncType
from core.db.session import SessionFactory
from core.syncers.base import SyncContext, SyncResult

_ZERO: dict[SyncType, tuple[str, ...]] = {
    SyncType.DISCORD: ("granted", "revoked", "unchanged", "failed"),
    SyncType.CALENDAR: ("created", "updated", "unchanged", "failed"),
    SyncType.REMINDERS: ("scheduled", "cancelled", "failed"),
    SyncType.RSVPS: ("updated", "failed"),
}


@dataclass
class StandInSyncer:
    sync_type: SyncType
    session_factory: SessionFactory

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        async with self.session_factory() as session:
            members = await session.scalar(
                select(func.count())
                .select_from(Membership)
                .where(Membership.group_id == group_id, Membership.left_at.is_(None))
            )
            meetings = await session.scalar(
                select(func.count()).select_from(Meeting).where(Meeting.group_id == group_id)
            )
        result: SyncResult = dict.fromkeys(_ZERO[self.sync_type], 0)
        if self.sync_type is SyncType.DISCORD:
            result["unchanged"] = members or 0
        elif self.sync_type is SyncType.CALENDAR:
            result["unchanged"] = meetings or 0
        else:
            result["meetings"] = meetings or 0
        return result
