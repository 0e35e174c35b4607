"""Reminders: at most once per (meeting, offset) across crashes; never sent late."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db.migrate import upgrade
from core.db.models import Group, Meeting, ReminderDelivery, SyncType, User
from core.db.session import SessionFactory, create_engine, create_session_factory
from core.group_joining import join_group
from core.notifications.scheduler import SyncScheduler
from core.runtime import open_runtime
from core.sandbox import Sandbox, start_sandbox
from core.syncers.reminder_plan import ReminderKey, nonce_for
from tests.waiting import wait_for
from tests.world import GUILD, sandbox_settings

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = "POST /channels/{channel_id}/messages"
TEXT = "850000000000000001"


async def seed_group(
    sessions: SessionFactory, sandbox: Sandbox, starts_in: timedelta
) -> tuple[int, int]:
    """One group with one member and one meeting; returns (group id, meeting id)."""
    sandbox.discord.add_channel(TEXT, GUILD, "cohort", type=0)
    sandbox.discord.add_user("850000000000000009", "ann")
    sandbox.discord.add_member(GUILD, "850000000000000009")
    sandbox.calendar.add_calendar("cohort@group.calendar.google.com")
    async with sessions() as session, session.begin():
        group = Group(
            name="Cohort",
            discord_guild_id=GUILD,
            discord_text_channel_id=TEXT,
            calendar_id="cohort@group.calendar.google.com",
        )
        user = User(
            email="ann@example.org", discord_user_id="850000000000000009", display_name="Ann"
        )
        session.add_all([group, user])
        await session.flush()
        meeting = Meeting(
            group_id=group.id,
            sequence=1,
            duration_minutes=60,
            starts_at=datetime.now(UTC) + starts_in,
        )
        session.add(meeting)
        await session.flush()
        await join_group(session, user.id, group.id)
        return group.id, meeting.id


async def reminder_status(sessions: SessionFactory, meeting_id: int) -> str | None:
    async with sessions() as session:
        row = await session.scalar(
            select(ReminderDelivery).where(ReminderDelivery.meeting_id == meeting_id)
        )
    return None if row is None else row.status


@pytest.fixture
async def sqlite_sandbox(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, str, SessionFactory]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gs.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    async with start_sandbox(time_scale=1.0) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        yield sandbox, url, create_session_factory(engine)
    await engine.dispose()


async def test_a_reminder_missed_beyond_the_grace_window_is_skipped_not_sent(
    sqlite_sandbox: tuple[Sandbox, str, SessionFactory], tmp_path: Path
) -> None:
    sandbox, url, sessions = sqlite_sandbox
    _, meeting_id = await seed_group(sessions, sandbox, starts_in=timedelta(minutes=70))
    # The daemon was down when this reminder was due 5 minutes ago (grace: 1 minute).
    async with sessions() as session, session.begin():
        key = ReminderKey(meeting_id, 75)
        session.add(
            ReminderDelivery(
                meeting_id=meeting_id,
                offset_minutes=75,
                group_id=1,
                status="scheduled",
                fire_at=datetime.now(UTC) - timedelta(minutes=5),
                nonce=nonce_for(key),
            )
        )
    settings = sandbox_settings(
        sandbox, url, tmp_path, reminder_grace_seconds=60, reminder_offsets_minutes="75"
    )

    async with AsyncExitStack() as stack:  # a daemon starting up re-arms the timer
        scheduler = SyncScheduler()
        await open_runtime(settings, stack, scheduler=scheduler)
        scheduler.start()
        stack.callback(scheduler.shutdown, wait=False)

        async def decided() -> bool:
            return await reminder_status(sessions, meeting_id) != "scheduled"

        await wait_for(decided, message="the missed reminder to be decided")

    assert await reminder_status(sessions, meeting_id) == "skipped"
    assert sandbox.discord.messages(TEXT) == []


def start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "main.py", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
async def test_sigkill_right_after_sending_does_not_send_the_reminder_twice(
    sqlite_sandbox: tuple[Sandbox, str, SessionFactory], tmp_path: Path
) -> None:
    sandbox, url, sessions = sqlite_sandbox
    # Meeting in 64 s with a 1-minute reminder: the reminder is due in about 4 s.
    _, meeting_id = await seed_group(sessions, sandbox, starts_in=timedelta(seconds=64))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "GOOGLE_"))},
        "DATABASE_URL": url,
        "LOG_FORMAT": "json",
        "DISCORD_BOT_TOKEN": sandbox.discord_bot_token,
        "DISCORD_API_BASE_URL": sandbox.discord_base_url,
        "GOOGLE_CREDENTIALS_FILE": str(sandbox.write_service_account_file(tmp_path / "sa.json")),
        "GOOGLE_CALENDAR_ENDPOINT": sandbox.calendar_endpoint,
        "TIME_SCALE": "0.01",
        "OUTBOX_POLL_SECONDS": "0.1",
        "REMINDER_OFFSETS_MINUTES": "1",
    }
    log = tmp_path / "daemon.log"
    # The post is slow, so the test can hold the database while the message is in flight.
    sandbox.discord.inject("latency", latency=1.5, route=MESSAGES, count=1)
    daemon = start_daemon(env, log)
    try:

        async def sending() -> bool:
            return await reminder_status(sessions, meeting_id) == "sending"

        await wait_for(sending, timeout=30, message="the reminder to be in flight")
        lock = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")  # the daemon cannot record the send now
        await wait_for(
            lambda: len(sandbox.discord.messages(TEXT)) == 1,
            timeout=10,
            message="the message to be posted",
        )
        await asyncio.sleep(0.3)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        lock.execute("ROLLBACK")
        lock.close()
        assert await reminder_status(sessions, meeting_id) == "sending"  # the crash window

        daemon = start_daemon(env, log)

        async def sent() -> bool:
            return await reminder_status(sessions, meeting_id) == "sent"

        await wait_for(sent, timeout=30, message="the restarted daemon to finish the send")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)

    posts = [r for r in sandbox.discord.request_log if r.route == MESSAGES]
    assert len(posts) == 2  # posted again after the crash, with the same nonce ...
    assert {p.body["nonce"] for p in posts} == {nonce_for(ReminderKey(meeting_id, 1))}
    assert len(sandbox.discord.messages(TEXT)) == 1  # ... and Discord kept one message
    assert SyncType.REMINDERS.value in log.read_text()
