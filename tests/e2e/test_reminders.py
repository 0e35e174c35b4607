"""Reminders delivered by a real daemon subprocess from rows other processes write, on
SQLite and PostgreSQL: on time, never early, none for a cancelled meeting, and at most
once across a SIGKILL while a post is in flight, whenever the daemon comes back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from core.db.session import SessionFactory
from core.reminders.plan import ReminderKey, nonce_for
from core.sandbox import DiscordLimits, Sandbox, SandboxLimits, start_sandbox
from tests.e2e.reminder_world import (
    HISTORY,
    MESSAGES,
    OFFSET,
    delete_meeting,
    due_in,
    move_meeting,
    posted_at,
    reminder_row,
    seed_group,
    write_rows_as_an_application,
)
from tests.engine.daemon_process import Daemon
from tests.waiting import wait_for
from tests.world import GUILD

pytestmark = pytest.mark.slow
SCALE = 0.01


@asynccontextmanager
async def sandbox_with(nonce_window: float = 300.0) -> AsyncIterator[Sandbox]:
    limits = SandboxLimits(discord=DiscordLimits(nonce_window=nonce_window))
    async with start_sandbox(time_scale=SCALE, limits=limits) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        yield sandbox


def daemon_env(sandbox: Sandbox, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "SYNCER_FACTORY": "core.syncers.registry:build_syncers",
        "ENABLED_SERVICES": "discord,calendar",
        "DISCORD_BOT_TOKEN": sandbox.discord_bot_token,
        "DISCORD_API_BASE_URL": sandbox.discord_base_url,
        "GOOGLE_CREDENTIALS_FILE": str(sandbox.write_service_account_file(tmp_path / "sa.json")),
        "GOOGLE_IMPERSONATE_SUBJECT": sandbox.impersonate_subject,
        "GOOGLE_CALENDAR_ENDPOINT": sandbox.calendar_endpoint,
        "TIME_SCALE": str(SCALE),
        "OUTBOX_POLL_SECONDS": "0.1",
        "REMINDER_OFFSETS_MINUTES": str(OFFSET),
        "REMINDER_GRACE_SECONDS": "600",
        **extra,
    }


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


async def start(
    daemons: list[Daemon], database_url: str, tmp_path: Path, env: dict[str, str]
) -> Daemon:
    n = len(daemons)
    daemon = Daemon(database_url, tmp_path, tmp_path / f"daemon-{n}.log", **env)
    daemons.append(daemon)
    await wait_for(
        lambda: bool(daemon.events("daemon_started")) or daemon.process.poll() is not None,
        timeout=60,
        message="the daemon to start",
    )
    assert daemon.process.poll() is None, daemon.output()
    return daemon


async def test_reminders_written_moved_and_cancelled_by_another_process(
    session_factory: SessionFactory, database_url: str, tmp_path: Path, daemons: list[Daemon]
) -> None:
    async with sandbox_with() as sandbox:
        await start(daemons, database_url, tmp_path, daemon_env(sandbox, tmp_path))
        # Given three groups whose reminders fall due in 3 s, written by an application
        # process while the daemon runs
        written, moved, cancelled = [
            await seed_group(session_factory, sandbox, [due_in(3.0)]) for _ in range(3)
        ]
        for group in (written, moved, cancelled):
            await write_rows_as_an_application(session_factory, group.group_id)
        due = (await reminder_row(session_factory, written.meeting_ids[0])).fire_at
        await asyncio.sleep(0.5)  # the daemon has armed the original times meanwhile
        # When the application moves one meeting 2 s later and deletes another
        new_start = (await reminder_row(session_factory, moved.meeting_ids[0])).fire_at + (
            timedelta(minutes=OFFSET, seconds=2)
        )
        await move_meeting(session_factory, moved.meeting_ids[0], new_start)
        await delete_meeting(session_factory, cancelled.meeting_ids[0])

        async def settled() -> bool:
            rows = [
                await reminder_row(session_factory, g.meeting_ids[0])
                for g in (written, moved, cancelled)
            ]
            return [r.status for r in rows] == ["sent", "sent", "cancelled"]

        await wait_for(settled, timeout=30, message="the three reminders to be settled")
        await asyncio.sleep(0.3)  # nothing more arrives
        messages = {g: sandbox.discord.messages(g.channel_id) for g in (written, moved, cancelled)}

    # Then the written one was posted once, on time; the moved one at its new time only;
    # the cancelled one never
    (on_time,) = messages[written]
    assert timedelta(0) <= posted_at(on_time) - due < timedelta(seconds=1)
    assert f"<@{written.member_discord_id}>" in on_time["content"]
    (late,) = messages[moved]
    assert posted_at(late) >= new_start - timedelta(minutes=OFFSET)
    assert messages[cancelled] == []


@asynccontextmanager
async def row_locked(database_url: str, meeting_id: int) -> AsyncIterator[None]:
    """Hold the reminder row (SQLite: the whole database) so the daemon cannot record its
    send: the crash then falls between the post and the record."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        lock = sqlite3.connect(str(url.database), isolation_level=None, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        return
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection: Any = await asyncpg.connect(plain)
    try:
        async with connection.transaction():
            await connection.execute(
                "SELECT 1 FROM reminder_deliveries WHERE meeting_id = $1 FOR UPDATE", meeting_id
            )
            yield
    finally:
        await connection.close()


# restart: within the nonce window (the engine trusts 90 s, Discord remembers 120 s: room
# for a slow start on a loaded machine) or after it (the engine trusts 1 s, Discord
# remembers 3 s, the restart waits 3.5 s).
WINDOWS = {"within": (9000.0, 12000.0, 0.0), "after": (100.0, 300.0, 3.5)}


@pytest.mark.parametrize("restart", ["within", "after"])
async def test_sigkill_while_sending_leaves_exactly_one_message(
    session_factory: SessionFactory,
    database_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
    restart: str,
) -> None:
    trusted, remembered, wait_after_first_post = WINDOWS[restart]
    async with sandbox_with(nonce_window=remembered) as sandbox:
        env = daemon_env(sandbox, tmp_path, REMINDER_NONCE_WINDOW_SECONDS=str(trusted))
        first = await start(daemons, database_url, tmp_path, env)
        seeded = await seed_group(session_factory, sandbox, [due_in(1.5)])
        meeting_id = seeded.meeting_ids[0]
        # Given a post that is slow to answer, and a database that will not take its record
        sandbox.discord.inject("latency", latency=30.0, route=MESSAGES, count=1)
        await write_rows_as_an_application(session_factory, seeded.group_id)

        async def sending() -> bool:
            return (await reminder_row(session_factory, meeting_id)).status == "sending"

        await wait_for(sending, timeout=30, interval=0.005, message="the post to be in flight")
        async with row_locked(database_url, meeting_id):
            await wait_for(lambda: len(sandbox.discord.messages(seeded.channel_id)) == 1,
                           timeout=10, message="the message to be posted")
            # When the daemon is killed before it records the send
            first.kill()
        row = await reminder_row(session_factory, meeting_id)
        assert row.status == "sending"
        assert row.first_post_at is not None
        wake = row.first_post_at + timedelta(seconds=wait_after_first_post)
        await asyncio.sleep(max((wake - datetime.now(UTC)).total_seconds(), 0))
        # ... and comes back (within or after Discord's nonce window)
        await start(daemons, database_url, tmp_path, env)

        async def sent() -> bool:
            return (await reminder_row(session_factory, meeting_id)).status == "sent"

        await wait_for(sent, timeout=30, message="the restarted daemon to settle the row")
        await asyncio.sleep(0.3)

    # Then the channel holds exactly one message
    assert len(sandbox.discord.messages(seeded.channel_id)) == 1
    posts = [r for r in sandbox.discord.request_log if r.route == MESSAGES]
    looks = [r for r in sandbox.discord.request_log if r.route == HISTORY]
    assert {p.body["nonce"] for p in posts} == {nonce_for(ReminderKey(meeting_id, OFFSET))}
    if restart == "within":  # re-posted with the same nonce, which Discord deduped
        assert (len(posts), len(looks)) == (2, 0)
    else:  # looked in the channel, found its own message, did not post again
        assert (len(posts), len(looks)) == (1, 1)
