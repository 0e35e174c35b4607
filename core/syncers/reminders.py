"""The reminders sync and the reminder sender.

The sync keeps one ``reminder_deliveries`` row per (meeting, offset) in step with the
group's upcoming meetings and arms an APScheduler date job for each scheduled one (the
row is the record, the job only the timer, re-armed from rows at start-up). The sender
claims the row, posts with a deterministic Discord nonce, and records the send: a crash
between the post and the record re-posts with the same nonce, which Discord dedupes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update

from core.clients.ports import DiscordPort
from core.clock import Clock, TimeScale
from core.db.models import ReminderDelivery, SyncType
from core.db.session import SessionFactory
from core.errors import SyncError, TransientError
from core.lanes import Lane
from core.observability import get_logger
from core.syncers.base import SyncContext, SyncResult
from core.syncers.reminder_plan import (
    ExistingReminder,
    ReminderKey,
    desired_reminders,
    nonce_for,
    plan_reminders,
    reminder_text,
)
from core.syncers.snapshot_loader import load_snapshot

log = get_logger("groupsync.reminders")
PENDING = ("scheduled", "sending")


class ReminderTimers(Protocol):
    def arm(self, key: ReminderKey, fire_at: datetime) -> None: ...

    def disarm(self, key: ReminderKey) -> None: ...


class NoTimers:
    """No scheduler in this process: rows alone say what is owed; the daemon arms them."""

    def arm(self, key: ReminderKey, fire_at: datetime) -> None:
        pass

    def disarm(self, key: ReminderKey) -> None:
        pass


def job_id(key: ReminderKey) -> str:
    return f"reminder_{key.meeting_id}_{key.offset_minutes}"


class SchedulerTimers:
    """Date jobs on the running APScheduler, one per pending reminder."""

    def __init__(self, scheduler: Any, sender: ReminderSender) -> None:
        self._scheduler = scheduler
        self._sender = sender

    def arm(self, key: ReminderKey, fire_at: datetime) -> None:
        self._scheduler.add_job(
            self._sender.send,
            "date",
            run_date=fire_at,
            id=job_id(key),
            kwargs={"meeting_id": key.meeting_id, "offset_minutes": key.offset_minutes},
            replace_existing=True,
            misfire_grace_time=None,  # lateness is ours to judge (the grace window)
        )

    def disarm(self, key: ReminderKey) -> None:
        if self._scheduler.get_job(job_id(key)) is not None:
            self._scheduler.remove_job(job_id(key))


class RemindersSyncer:
    sync_type = SyncType.REMINDERS

    def __init__(
        self,
        session_factory: SessionFactory,
        timers: ReminderTimers,
        offsets_minutes: tuple[int, ...],
        grace: timedelta,
    ) -> None:
        self._sessions = session_factory
        self._timers = timers
        self._offsets = offsets_minutes
        self._grace = grace

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        now = context.now
        async with self._sessions() as session, session.begin():
            snapshot = await load_snapshot(session, group_id, now)
            rows = {
                ReminderKey(r.meeting_id, r.offset_minutes): r
                for r in (
                    await session.execute(
                        select(ReminderDelivery).where(ReminderDelivery.group_id == group_id)
                    )
                ).scalars()
            }
            existing = [ExistingReminder(k, r.fire_at, r.status) for k, r in rows.items()]
            plan = plan_reminders(
                desired_reminders(snapshot, self._offsets), existing, now, self._grace
            )
            for key, fire_at in plan.schedule:
                row = rows.get(key) or _new_row(session, key, group_id)
                row.fire_at, row.status, row.decided_at = fire_at, "scheduled", None
            for key, fire_at in plan.too_late:
                row = rows.get(key) or _new_row(session, key, group_id)
                row.fire_at, row.status, row.decided_at = fire_at, "skipped", now
                log.info(
                    "reminder_skipped",
                    group_id=group_id,
                    reason="past the grace window",
                    meeting_id=key.meeting_id,
                    offset_minutes=key.offset_minutes,
                )
            for key in plan.cancel:
                rows[key].status, rows[key].decided_at = "cancelled", now
        for key, fire_at in (*plan.schedule, *plan.unchanged):
            self._timers.arm(key, fire_at)
        for key in plan.cancel:
            self._timers.disarm(key)
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
    )
    session.add(row)
    return row


class ReminderSender:
    """Runs when a reminder's timer fires. At most one message per (meeting, offset)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        discord: DiscordPort | None,
        clock: Clock,
        grace: timedelta,
        time_scale: TimeScale,
    ) -> None:
        self._sessions = session_factory
        self._discord = discord
        self._clock = clock
        self._grace = grace
        self._scale = time_scale
        self.timers: ReminderTimers = NoTimers()

    async def send(self, meeting_id: int, offset_minutes: int) -> str:
        key = ReminderKey(meeting_id, offset_minutes)
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            row = await session.get(ReminderDelivery, (meeting_id, offset_minutes))
            if row is None or row.status not in PENDING:
                return "not pending"
            if now - row.fire_at > self._grace:
                row.status, row.decided_at = "skipped", now
                log.warning(
                    "reminder_skipped",
                    meeting_id=meeting_id,
                    offset_minutes=offset_minutes,
                    reason="missed by more than the grace "
                    f"window ({self._grace.total_seconds():.0f} s)",
                    late_seconds=round((now - row.fire_at).total_seconds(), 3),
                )
                return "skipped"
            row.status = "sending"  # from here a crash re-posts with the same nonce
            group_id, nonce = row.group_id, row.nonce
            snapshot = await load_snapshot(session, group_id, now)
        meeting = next((m for m in snapshot.upcoming if m.meeting_id == meeting_id), None)
        if meeting is None or not snapshot.text_channel_id or self._discord is None:
            await self._finish(key, "cancelled", None, now)
            return "cancelled"
        members = [m.discord_user_id for m in snapshot.members if m.discord_user_id]
        text = reminder_text(snapshot.name, meeting.starts_at, members, offset_minutes)
        try:
            # Only the members are pinged: the group's name may hold "@everyone" or "<@&…>".
            message_id = await self._discord.send_message(
                snapshot.text_channel_id, text, nonce, Lane.INTERACTIVE,
                mention_user_ids=members,
            )
        except SyncError as exc:
            retry_in = max(self._scale.seconds(5.0), getattr(exc, "retry_after", None) or 0.0)
            log.warning(
                "reminder_send_failed",
                meeting_id=meeting_id,
                offset_minutes=offset_minutes,
                error=str(exc),
                retry_in=retry_in,
                transient=isinstance(exc, TransientError),
            )
            self.timers.arm(key, now + timedelta(seconds=retry_in))
            return "retrying"
        await self._finish(key, "sent", message_id, self._clock.now())
        log.info(
            "reminder_sent",
            meeting_id=meeting_id,
            offset_minutes=offset_minutes,
            group_id=group_id,
            message_id=message_id,
        )
        return "sent"

    async def _finish(
        self, key: ReminderKey, status: str, message_id: str | None, now: datetime
    ) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(ReminderDelivery)
                .where(
                    ReminderDelivery.meeting_id == key.meeting_id,
                    ReminderDelivery.offset_minutes == key.offset_minutes,
                )
                .values(status=status, message_id=message_id, decided_at=now)
            )


async def rearm_pending(session_factory: SessionFactory, timers: ReminderTimers) -> int:
    """At start-up or takeover: arm a timer for every pending reminder row (overdue ones
    fire at once and the sender decides whether they are still within grace)."""
    async with session_factory() as session:
        rows: Iterable[ReminderDelivery] = (
            await session.execute(
                select(ReminderDelivery).where(ReminderDelivery.status.in_(PENDING))
            )
        ).scalars()
        keys = [(ReminderKey(r.meeting_id, r.offset_minutes), r.fire_at) for r in rows]
    for key, fire_at in keys:
        timers.arm(key, fire_at)
    return len(keys)
