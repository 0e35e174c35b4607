"""Reminder scenarios: groups with a text channel in the fake Discord, meetings at chosen
wall-clock times, reminder rows written the way an application process writes them (the
reminders syncer run outside any daemon), and readers for rows and posted messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

from sqlalchemy import select

from core.config import Settings
from core.daemon import run_daemon
from core.db.models import Group, Meeting, Membership, ReminderDelivery, User
from core.db.session import SessionFactory
from core.lanes import Lane
from core.notifications import scheduler as scheduler_module
from core.reminders.sync import RemindersSyncer
from core.sandbox import Sandbox
from core.syncers.base import SyncContext
from tests.waiting import wait_for
from tests.world import GUILD

OFFSET = 1  # minutes: a meeting starting in 60 s + d has its reminder due in d seconds
MESSAGES = "POST /channels/{channel_id}/messages"
HISTORY = "GET /channels/{channel_id}/messages"
_ids = count(1)


@dataclass(frozen=True)
class Seeded:
    group_id: int
    meeting_ids: tuple[int, ...]
    channel_id: str
    member_discord_id: str


def due_in(seconds: float) -> datetime:
    """The start of a meeting whose OFFSET reminder is due ``seconds`` from now."""
    return datetime.now(UTC) + timedelta(minutes=OFFSET, seconds=seconds)


async def seed_group(
    sessions: SessionFactory, sandbox: Sandbox, starts: list[datetime]
) -> Seeded:
    """A group with one member and its meetings. No outbox row is written: nothing is owed
    to the daemon, so the reminder rows come only from whoever runs the syncer."""
    n = next(_ids)
    channel, member = f"86000000000{n:07d}", f"87000000000{n:07d}"
    sandbox.discord.add_channel(channel, GUILD, f"cohort-{n}", type=0)
    sandbox.discord.add_user(member, f"member{n}")
    sandbox.discord.add_member(GUILD, member)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        group = Group(name=f"Cohort {n}", discord_guild_id=GUILD, discord_text_channel_id=channel)
        user = User(email=f"m{n}@example.org", discord_user_id=member, display_name=f"M{n}")
        session.add_all([group, user])
        await session.flush()
        session.add(Membership(user_id=user.id, group_id=group.id, joined_at=now))
        meetings = [
            Meeting(group_id=group.id, sequence=i + 1, duration_minutes=60, starts_at=start)
            for i, start in enumerate(starts)
        ]
        session.add_all(meetings)
        await session.flush()
        return Seeded(group.id, tuple(m.id for m in meetings), channel, member)


async def write_rows_as_an_application(
    sessions: SessionFactory, group_id: int, grace_seconds: float = 600
) -> dict[str, int]:
    """The reminders sync run outside the daemon (no scheduler, no lease): it can only
    write rows."""
    syncer = RemindersSyncer(sessions, (OFFSET,), timedelta(seconds=grace_seconds))
    return await syncer.sync(group_id, SyncContext(lane=Lane.INTERACTIVE, now=datetime.now(UTC)))


async def move_meeting(sessions: SessionFactory, meeting_id: int, starts_at: datetime) -> None:
    async with sessions() as session, session.begin():
        meeting = await session.get(Meeting, meeting_id)
        assert meeting is not None
        meeting.starts_at = starts_at


async def delete_meeting(sessions: SessionFactory, meeting_id: int) -> None:
    async with sessions() as session, session.begin():
        meeting = await session.get(Meeting, meeting_id)
        assert meeting is not None
        await session.delete(meeting)


async def reminder_row(sessions: SessionFactory, meeting_id: int) -> ReminderDelivery:
    async with sessions() as session:
        row = await session.scalar(
            select(ReminderDelivery).where(ReminderDelivery.meeting_id == meeting_id)
        )
    assert row is not None, f"no reminder row for meeting {meeting_id}"
    return row


async def statuses(sessions: SessionFactory) -> dict[str, int]:
    async with sessions() as session:
        rows = (await session.execute(select(ReminderDelivery.status))).scalars().all()
    found: dict[str, int] = {}
    for status in rows:
        found[status] = found.get(status, 0) + 1
    return found


def posted_at(message: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(message["timestamp"]))


@asynccontextmanager
async def daemon_in_process(settings: Settings) -> AsyncIterator[None]:
    """The real daemon (leadership, scheduler, sweep, reminder delivery) in this loop."""
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(run_daemon(settings, stop))
    await wait_for(
        lambda: scheduler_module._scheduler is not None or task.done(),
        message="the daemon to start",
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
