"""Force re-sync of one group: mark the Discord grants still desired ``resend`` and drop
the calendar events' fingerprints, then run discord, calendar and reminders again, so
all of it is sent again (each calendar event as one full update, or an insert if it has
no record). Records are kept, not deleted: a sync decides what is ours from them, and an
overwrite of ours without its record would look like a person's, never to be removed.

What is no longer desired keeps its record (so it is still removed), and a reminder
already sent or skipped is final: it is never sent again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from core.admin.control import require_positive
from core.admin.errors import NotFound
from core.admin.estimate import Estimate, estimate_key
from core.config import Settings
from core.db.models import CalendarEventRecord, DeliveryState, DiscordGrant, Group, SyncType
from core.db.session import SessionFactory
from core.engine.running.outbox import mark_owed
from core.syncers.calendar_plan import desired_events
from core.syncers.discord_plan import desired_grants
from core.syncers.snapshot_loader import load_snapshot

RESENT = (SyncType.DISCORD, SyncType.CALENDAR, SyncType.REMINDERS)


class ResyncPlan(Estimate):
    def to_json(self) -> dict[str, int]:
        return {"overwrites": self.overwrites, "events": self.events,
                "reminders": self.reminders, "calls": self.calls}


async def preview(session_factory: SessionFactory, settings: Settings, group_id: int,
                  now: datetime) -> ResyncPlan:
    group_id = require_positive(group_id)
    total = Estimate()
    async with session_factory() as session:
        if await session.get(Group, group_id) is None:
            raise NotFound(f"unknown group {group_id}")
        for sync_type in RESENT:
            total = total + await estimate_key(session, settings, sync_type, group_id, now,
                                               forget=True)
    return ResyncPlan(total.calls, total.overwrites, total.events, total.reminders)


async def run(session_factory: SessionFactory, settings: Settings, group_id: int,
              now: datetime) -> ResyncPlan:
    """Forget and mark owed in one transaction; the daemon (or a caller) runs the keys."""
    plan = await preview(session_factory, settings, group_id, now)
    async with session_factory() as session, session.begin():
        snapshot = await load_snapshot(session, group_id, now)
        grants, _ = desired_grants(snapshot)
        for grant in grants:
            await session.execute(update(DiscordGrant).where(
                DiscordGrant.group_id == group_id, DiscordGrant.kind == grant.kind,
                DiscordGrant.target_id == grant.target_id,
                DiscordGrant.discord_user_id == grant.discord_user_id,
            ).values(state=DeliveryState.RESEND.value))
        meetings = [spec.meeting_id for spec in desired_events(snapshot)]
        if meetings:  # keep the record and its etag; a missing fingerprint forces the write
            await session.execute(update(CalendarEventRecord).where(
                CalendarEventRecord.group_id == group_id,
                CalendarEventRecord.meeting_id.in_(meetings)).values(fingerprint=None))
        await mark_owed(session, [group_id], now, RESENT)
    return plan
