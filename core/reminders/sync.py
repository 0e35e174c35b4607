"""The reminders sync: plan and write the ``reminder_deliveries`` rows, nothing else.

One row per (meeting, offset) in step with the group's upcoming meetings. The rows are the
only record of what is owed: the active daemon's delivery (core/reminders/delivery.py) arms
its timers from them and posts. Rows are written through the run's fence, and on
PostgreSQL the same transaction NOTIFYs the daemon, which re-reads them at once (on
SQLite it re-reads them on its poll).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.clients.ports import DiscordPort
from core.db.models import ReminderDelivery, ReminderStatus, SyncType
from core.db.session import SessionFactory
from core.observability import get_logger
from core.reminders.plan import (
    ExistingReminder,
    ReminderKey,
    ReminderPlan,
    desired_reminders,
    nonce_for,
    plan_reminders,
)
from core.syncers.base import SyncContext, SyncResult
from core.syncers.snapshot import GroupSnapshot
from core.syncers.snapshot_loader import read_snapshot

log = get_logger("groupsync.reminders")

# NOTIFY channel: a commit that changed reminder rows wakes the daemon's delivery.
REMINDERS_CHANNEL = "groupsync_reminders"


class RemindersSyncer:
    sync_type = SyncType.REMINDERS

    def __init__(
        self,
        session_factory: SessionFactory,
        offsets_minutes: tuple[int, ...],
        grace: timedelta,
        discord: DiscordPort | None = None,
    ) -> None:
        self._sessions = session_factory
        self._offsets = offsets_minutes
        self._grace = grace
        # Not used by the sync: the engine's delivery posts through the same client (one
        # rate limiter, breaker and invalid-request guard per service and process).
        self.discord = discord

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        now = context.now

        def plan_and_write(session: Session) -> tuple[GroupSnapshot, ReminderPlan]:
            snapshot = read_snapshot(session, group_id, now)
            rows = {
                ReminderKey(r.meeting_id, r.offset_minutes): r
                for r in session.execute(
                    select(ReminderDelivery).where(ReminderDelivery.group_id == group_id)
                ).scalars()
            }
            existing = [ExistingReminder(k, r.fire_at, r.status) for k, r in rows.items()]
            plan = plan_reminders(
                desired_reminders(snapshot, self._offsets), existing, now, self._grace
            )
            for key, fire_at in plan.schedule:
                row = rows.get(key) or _new_row(session, key, group_id)
                _reschedule(row, fire_at)
            for key, fire_at in plan.too_late:
                row = rows.get(key) or _new_row(session, key, group_id)
                row.fire_at, row.status, row.decided_at = fire_at, ReminderStatus.SKIPPED, now
                log.info(
                    "reminder_skipped",
                    group_id=group_id,
                    reason="past the grace window when planned",
                    meeting_id=key.meeting_id,
                    offset_minutes=key.offset_minutes,
                )
            for key in plan.cancel:
                rows[key].status, rows[key].decided_at = ReminderStatus.CANCELLED, now
                rows[key].next_attempt_at = None
            if plan.schedule or plan.cancel:
                _notify(session)
            return snapshot, plan

        # Read, plan and write in one fenced transaction (one thread hop on SQLite).
        snapshot, plan = await context.fence_or(self._sessions).run(plan_and_write)
        return {
            "meetings": len(snapshot.upcoming),
            "scheduled": len(plan.schedule),
            "skipped": len(plan.too_late),
            "cancelled": len(plan.cancel),
            "unchanged": len(plan.unchanged),
            "failed": 0,
        }


def _new_row(session: Any, key: ReminderKey, group_id: int) -> ReminderDelivery:
    row = ReminderDelivery(
        meeting_id=key.meeting_id,
        offset_minutes=key.offset_minutes,
        group_id=group_id,
        nonce=nonce_for(key),
        attempt=0,
        sentry_reported_level=0,
    )
    session.add(row)
    return row


def _reschedule(row: ReminderDelivery, fire_at: Any) -> None:
    """New or moved: a fresh due time starts a fresh streak. ``first_post_at`` stays: a
    post that may have landed earlier is still looked for before any re-post."""
    row.fire_at, row.status, row.decided_at = fire_at, ReminderStatus.SCHEDULED, None
    row.attempt, row.next_attempt_at, row.last_error, row.error_kind = 0, None, None, None
    row.failing_since, row.sentry_reported_level = None, 0


def _notify(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, '')"), {"channel": REMINDERS_CHANNEL}
        )
