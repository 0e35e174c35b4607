"""Pure: which reminders (meeting, offset) should be scheduled, moved or cancelled.

A reminder is sent at most once: rows already sent, missed or skipped are final and never
planned again. One whose time passed beyond the grace window is recorded as skipped, not
sent late. A row in ``sending`` belongs to the daemon's delivery (a post may be in flight
or its outcome unknown after a crash): the plan never moves or cancels it; the delivery
settles it and reads the meeting itself before any post.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.syncers.snapshot import GroupSnapshot

FINAL = frozenset({"sent", "missed", "skipped"})
PLANNABLE = frozenset({"scheduled", "retrying"})  # waiting for their time: ours to move


@dataclass(frozen=True, order=True)
class ReminderKey:
    meeting_id: int
    offset_minutes: int


@dataclass(frozen=True)
class ExistingReminder:
    key: ReminderKey
    fire_at: datetime
    status: str  # a core.db.models.ReminderStatus value


@dataclass(frozen=True)
class ReminderPlan:
    schedule: tuple[tuple[ReminderKey, datetime], ...]  # new or moved
    too_late: tuple[tuple[ReminderKey, datetime], ...]  # record as skipped
    cancel: tuple[ReminderKey, ...]
    unchanged: tuple[tuple[ReminderKey, datetime], ...]  # still scheduled as they are


def nonce_for(key: ReminderKey) -> str:
    """Discord message nonce (≤ 25 chars): a retried post of the same reminder dedupes."""
    return f"gsr{key.meeting_id}o{key.offset_minutes}"[:25]


def desired_reminders(
    snapshot: GroupSnapshot, offsets_minutes: tuple[int, ...]
) -> dict[ReminderKey, datetime]:
    if not snapshot.exists or not snapshot.text_channel_id:
        return {}
    return {
        ReminderKey(m.meeting_id, offset): m.starts_at - timedelta(minutes=offset)
        for m in snapshot.upcoming
        for offset in offsets_minutes
    }


def plan_reminders(
    desired: dict[ReminderKey, datetime],
    existing: list[ExistingReminder],
    now: datetime,
    grace: timedelta,
) -> ReminderPlan:
    by_key = {r.key: r for r in existing}
    schedule, too_late, unchanged = [], [], []
    for key, fire_at in sorted(desired.items()):
        current = by_key.get(key)
        if current is not None and (current.status in FINAL or current.status == "sending"):
            continue
        if current is not None and current.status in PLANNABLE and current.fire_at == fire_at:
            unchanged.append((key, fire_at))
        elif fire_at < now - grace:
            too_late.append((key, fire_at))
        else:
            schedule.append((key, fire_at))
    cancel = [r.key for r in existing if r.key not in desired and r.status in PLANNABLE]
    return ReminderPlan(tuple(schedule), tuple(too_late), tuple(sorted(cancel)), tuple(unchanged))


def reminder_headline(group_name: str, starts_at: datetime, offset: int) -> str:
    """The part of a reminder that never changes with membership: how a sender recognises
    its own earlier post among the channel's messages."""
    when = f"{offset // 60} hours" if offset % 60 == 0 and offset >= 120 else f"{offset} minutes"
    if offset == 60:
        when = "1 hour"
    return f"Reminder: {group_name} meets in {when} ({starts_at.strftime('%Y-%m-%d %H:%M UTC')})."


def reminder_text(group_name: str, starts_at: datetime, mentions: list[str], offset: int) -> str:
    people = " ".join(f"<@{m}>" for m in mentions)
    return f"{reminder_headline(group_name, starts_at, offset)} {people}".strip()
