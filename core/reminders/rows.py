"""The reminder delivery rows as a small repository: read what is pending, claim one row
for a post, record how it ended. Every write is one short transaction, conditional on the
status it expects, so a row settled elsewhere (a sync cancelling it) is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.sql.elements import ColumnElement

from core.db.models import Meeting, ReminderDelivery, ReminderStatus
from core.db.session import SessionFactory
from core.reminders.plan import ReminderKey, reminder_headline, reminder_text
from core.reminders.policy import PENDING, Decision, RowFacts, decide
from core.syncers.snapshot_loader import load_snapshot


@dataclass(frozen=True)
class Message:
    """What a post needs, read in the same transaction as the decision."""

    channel_id: str
    text: str
    headline: str  # how our own earlier post is recognised in the channel
    nonce: str
    mentions: tuple[str, ...]  # the only users pinged (the group's name may hold @everyone)


@dataclass(frozen=True)
class Claim:
    key: ReminderKey
    group_id: int
    decision: Decision
    facts: RowFacts
    attempt: int  # failures so far in this streak
    failing_since: datetime | None
    sentry_reported_level: int
    message: Message | None  # None when the meeting or group is gone


def _key(key: ReminderKey) -> ColumnElement[bool]:
    return and_(
        ReminderDelivery.meeting_id == key.meeting_id,
        ReminderDelivery.offset_minutes == key.offset_minutes,
    )


def due_at(starts_at: datetime | None, offset_minutes: int) -> datetime | None:
    return None if starts_at is None else starts_at - timedelta(minutes=offset_minutes)


async def pending(session_factory: SessionFactory) -> list[tuple[ReminderKey, RowFacts]]:
    """Every pending row with its due time read from its meeting (moved meetings included,
    synced or not)."""
    stmt = (
        select(
            ReminderDelivery.meeting_id,
            ReminderDelivery.offset_minutes,
            ReminderDelivery.status,
            ReminderDelivery.next_attempt_at,
            ReminderDelivery.first_post_at,
            Meeting.starts_at,
        )
        .outerjoin(Meeting, Meeting.id == ReminderDelivery.meeting_id)
        .where(ReminderDelivery.status.in_([s.value for s in PENDING]))
    )
    async with session_factory() as session:
        rows = (await session.execute(stmt)).all()
    return [
        (ReminderKey(m, o), RowFacts(status, due_at(starts, o), next_at, first_post))
        for m, o, status, next_at, first_post, starts in rows
    ]


async def claim(
    session_factory: SessionFactory,
    key: ReminderKey,
    now: datetime,
    grace: timedelta,
    nonce_window: timedelta,
) -> Claim | None:
    """Read the row, its meeting and its group, decide, and for a post mark the row
    ``sending`` (with ``first_post_at`` kept from an earlier attempt) before any call."""
    async with session_factory() as session, session.begin():
        row = await session.get(ReminderDelivery, (key.meeting_id, key.offset_minutes))
        if row is None:
            return None
        meeting = await session.get(Meeting, key.meeting_id)
        snapshot = await load_snapshot(session, row.group_id, now)
        present = (
            meeting is not None
            and meeting.group_id == row.group_id
            and snapshot.exists
            and bool(snapshot.text_channel_id)
        )
        facts = RowFacts(
            row.status,
            due_at(meeting.starts_at, key.offset_minutes) if present and meeting else None,
            row.next_attempt_at,
            row.first_post_at,
        )
        decision = decide(facts, now, grace, nonce_window)
        message = None
        if present and meeting is not None and snapshot.text_channel_id:
            mentions = [m.discord_user_id for m in snapshot.members if m.discord_user_id]
            message = Message(
                snapshot.text_channel_id,
                reminder_text(snapshot.name, meeting.starts_at, mentions, key.offset_minutes),
                reminder_headline(snapshot.name, meeting.starts_at, key.offset_minutes),
                row.nonce,
                tuple(mentions),
            )
        if decision.action == "post":
            # From here a crash leaves the row ``sending``: the next start settles it.
            row.status = ReminderStatus.SENDING
            row.first_post_at = row.first_post_at or now
            row.next_attempt_at = None
        return Claim(
            key, row.group_id, decision, facts, row.attempt, row.failing_since,
            row.sentry_reported_level, message,
        )


async def _settle(
    session_factory: SessionFactory, key: ReminderKey, expect: frozenset[str], **values: Any
) -> bool:
    stmt = (
        update(ReminderDelivery)
        .where(_key(key), ReminderDelivery.status.in_(list(expect)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    async with session_factory() as session, session.begin():
        result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


_CLEAR_STREAK: dict[str, Any] = {
    "attempt": 0,
    "next_attempt_at": None,
    "last_error": None,
    "error_kind": None,
    "failing_since": None,
    "sentry_reported_level": 0,
}


async def record_sent(
    session_factory: SessionFactory, key: ReminderKey, message_id: str, now: datetime
) -> bool:
    return await _settle(
        session_factory, key, PENDING,
        status=ReminderStatus.SENT, message_id=message_id, decided_at=now, **_CLEAR_STREAK,
    )


async def record_missed(
    session_factory: SessionFactory, key: ReminderKey, now: datetime, error: str | None = None
) -> bool:
    values: dict[str, Any] = {"status": ReminderStatus.MISSED, "decided_at": now,
                              "next_attempt_at": None}
    if error is not None:
        values["last_error"] = error[:4000]
    return await _settle(session_factory, key, PENDING, **values)


async def record_cancelled(
    session_factory: SessionFactory, key: ReminderKey, now: datetime
) -> bool:
    return await _settle(
        session_factory, key, PENDING,
        status=ReminderStatus.CANCELLED, decided_at=now, next_attempt_at=None,
    )


async def record_not_posted(session_factory: SessionFactory, key: ReminderKey) -> bool:
    """A moved meeting's row whose earlier post did not land: back to waiting, with a
    fresh streak (the channel was checked, so there is nothing left to dedupe)."""
    return await _settle(
        session_factory, key, PENDING,
        status=ReminderStatus.SCHEDULED, first_post_at=None, **_CLEAR_STREAK,
    )


@dataclass(frozen=True)
class Failure:
    attempt: int
    next_attempt_at: datetime
    error: str
    error_kind: str
    failing_since: datetime
    sentry_reported_level: int


async def record_failure(session_factory: SessionFactory, key: ReminderKey, f: Failure) -> bool:
    return await _settle(
        session_factory, key, PENDING,
        status=ReminderStatus.RETRYING, attempt=f.attempt, next_attempt_at=f.next_attempt_at,
        last_error=f.error[:4000], error_kind=f.error_kind[:32], failing_since=f.failing_since,
        sentry_reported_level=f.sentry_reported_level,
    )
