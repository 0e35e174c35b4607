"""Reminder delivery by the real daemon in this process (scheduler, sweep, clients) against
the sandbox, on SQLite and PostgreSQL: retries, missed reminders and a burst."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update

from core.admin.service import AdminService
from core.db.models import Meeting, ReminderDelivery, ServiceState
from core.db.session import SessionFactory
from core.reminders.plan import ReminderKey, nonce_for
from core.reminders.status import reminder_overview, render_reminders
from core.sandbox import Sandbox, start_sandbox
from tests.e2e.reminder_world import (
    MESSAGES,
    OFFSET,
    daemon_in_process,
    due_in,
    posted_at,
    reminder_row,
    seed_group,
    statuses,
    write_rows_as_an_application,
)
from tests.engine import conftest as engine_fixtures
from tests.waiting import wait_for
from tests.world import GUILD, sandbox_settings

SCALE = 0.05
sentry_events = engine_fixtures.sentry_events  # a Sentry client recording its events


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        yield sandbox


async def test_a_send_failing_three_times_then_succeeding_posts_once_and_showed_retrying(
    sandbox: Sandbox,
    session_factory: SessionFactory,
    database_url: str,
    tmp_path: Path,
    sentry_events: list[dict[str, Any]],
) -> None:
    # Given a reminder due in 1 s whose first three posts are slow and answered 503
    # (slower than a retry's delay: the retry must not be dropped while one is running).
    seeded = await seed_group(session_factory, sandbox, [due_in(1.0)])
    await write_rows_as_an_application(session_factory, seeded.group_id)
    sandbox.discord.inject("latency", latency=4.0, route=MESSAGES, count=3)
    sandbox.discord.inject("5xx", status=503, route=MESSAGES, count=3)
    settings = sandbox_settings(sandbox, database_url, tmp_path, time_scale=SCALE)
    shown: list[str] = []

    async def sent() -> bool:
        view = await reminder_overview(session_factory)
        shown.append(render_reminders(view.to_json()))
        return (await reminder_row(session_factory, seeded.meeting_ids[0])).status == "sent"

    # When the daemon delivers it
    async with daemon_in_process(settings):
        await wait_for(sent, timeout=30, interval=0.01, message="the reminder to be sent")

    # Then one message, and status showed the retries with Discord's error on the way
    assert len(sandbox.discord.messages(seeded.channel_id)) == 1
    assert sandbox.discord.counts()[(MESSAGES, 503)] == 3
    retrying = [text for text in shown if "retrying" in text]
    assert retrying, "status never showed the reminder retrying"
    assert any("503" in text and "attempt" in text for text in retrying)
    row = await reminder_row(session_factory, seeded.meeting_ids[0])
    assert (row.attempt, row.last_error, row.failing_since) == (0, None, None)
    # Sentry heard once for the streak, not once per failure
    reported = [e for e in sentry_events if e["tags"].get("sync_type") == "reminders"]
    assert len(reported) == 1
    assert reported[0]["tags"]["group_id"] == str(seeded.group_id)


async def test_a_reminder_missed_beyond_the_grace_window_is_marked_missed_not_sent(
    sandbox: Sandbox, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> None:
    # Given a reminder that was due 5 minutes ago while no daemon ran (grace: 1 minute)
    seeded = await seed_group(session_factory, sandbox, [due_in(600)])
    await write_rows_as_an_application(session_factory, seeded.group_id)
    meeting_id = seeded.meeting_ids[0]
    async with session_factory() as session, session.begin():
        row = await session.get(ReminderDelivery, (meeting_id, OFFSET))
        assert row is not None
        meeting_start = datetime.now(UTC) + timedelta(minutes=OFFSET) - timedelta(minutes=5)
        meeting = await session.get(Meeting, meeting_id)
        assert meeting is not None
        meeting.starts_at = meeting_start
        row.fire_at = meeting_start - timedelta(minutes=OFFSET)
    settings = sandbox_settings(
        sandbox, database_url, tmp_path, time_scale=SCALE, reminder_grace_seconds=60
    )

    async def decided() -> bool:
        return (await reminder_row(session_factory, meeting_id)).status != "scheduled"

    async with daemon_in_process(settings):
        await wait_for(decided, timeout=20, message="the missed reminder to be decided")

    assert (await reminder_row(session_factory, meeting_id)).status == "missed"
    assert sandbox.discord.messages(seeded.channel_id) == []
    assert "missed" in render_reminders((await reminder_overview(session_factory)).to_json())


@pytest.mark.slow
async def test_500_reminders_due_in_the_same_second_across_100_channels_post_once_each(
    sandbox: Sandbox, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> None:
    # Given 100 groups with 5 meetings each and a daemon running
    later = due_in(3600)
    groups = [await seed_group(session_factory, sandbox, [later] * 5) for _ in range(100)]
    settings = sandbox_settings(sandbox, database_url, tmp_path, time_scale=SCALE)
    async with daemon_in_process(settings):
        # When all 500 meetings move so that their reminders fall due in the same second,
        # and an application writes the 500 rows
        start = due_in(2.0)
        due = start - timedelta(minutes=OFFSET)
        rows = [
            {
                "meeting_id": meeting_id,
                "offset_minutes": OFFSET,
                "group_id": g.group_id,
                "fire_at": due,
                "status": "scheduled",
                "nonce": nonce_for(ReminderKey(meeting_id, OFFSET)),
                "attempt": 0,
                "sentry_reported_level": 0,
            }
            for g in groups
            for meeting_id in g.meeting_ids
        ]
        async with session_factory() as session, session.begin():
            await session.execute(update(Meeting).values(starts_at=start))
            await session.execute(insert(ReminderDelivery), rows)

        async def all_settled() -> bool:
            return await statuses(session_factory) == {"sent": 500}

        await wait_for(all_settled, timeout=90, interval=0.2, message="500 reminders sent")

    # Then every channel holds its 5 reminders, each posted once, none early
    assert Counter(len(sandbox.discord.messages(g.channel_id)) for g in groups) == {5: 100}
    posted = [m for g in groups for m in sandbox.discord.messages(g.channel_id)]
    assert min(posted_at(m) for m in posted) >= due
    nonces = Counter(r.body["nonce"] for r in sandbox.discord.request_log if r.route == MESSAGES)
    assert set(nonces) == {row["nonce"] for row in rows}
    # ... within Discord's limits: no post was refused with a 429.
    assert sandbox.discord.counts()[(MESSAGES, 429)] == 0


async def test_a_reminder_due_while_discord_is_paused_waits_and_posts_once_after_the_resume(
    sandbox: Sandbox, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> None:
    # Given an operator paused Discord, and a reminder falls due during the pause
    settings = sandbox_settings(sandbox, database_url, tmp_path, time_scale=SCALE)
    admin = AdminService(session_factory, settings)
    await admin.pause("discord", via="test", reason="Discord incident")
    start = due_in(1.0)
    due = start - timedelta(minutes=OFFSET)
    seeded = await seed_group(session_factory, sandbox, [start])
    await write_rows_as_an_application(session_factory, seeded.group_id)
    meeting_id = seeded.meeting_ids[0]

    async with daemon_in_process(settings):
        # When it is well past due (grace is 10 minutes), nothing reached Discord
        await wait_for(lambda: datetime.now(UTC) >= due + timedelta(seconds=2.5), timeout=10,
                       message="the reminder to be 2.5 s past due")
        held = await reminder_row(session_factory, meeting_id)
        assert sandbox.discord.messages(seeded.channel_id) == []
        assert [r for r in sandbox.discord.request_log if r.route == MESSAGES] == []
        assert (held.status, held.attempt) == ("scheduled", 0)

        # Then the resume posts it, once, within a couple of seconds
        await admin.resume("discord", via="test")
        resumed = datetime.now(UTC)

        async def sent() -> bool:
            return (await reminder_row(session_factory, meeting_id)).status == "sent"

        await wait_for(sent, timeout=10, interval=0.02, message="the reminder after resume")
        assert (datetime.now(UTC) - resumed).total_seconds() < 3
    assert len(sandbox.discord.messages(seeded.channel_id)) == 1



async def test_a_reminder_due_while_the_bot_token_is_revoked_parks_discord_and_posts_after(
    sandbox: Sandbox,
    session_factory: SessionFactory,
    database_url: str,
    tmp_path: Path,
    sentry_events: list[dict[str, Any]],
) -> None:
    # Given a reminder due in a second, and nothing else owed to Discord
    seeded = await seed_group(session_factory, sandbox, [due_in(1.0)])
    await write_rows_as_an_application(session_factory, seeded.group_id)
    meeting_id = seeded.meeting_ids[0]
    settings = sandbox_settings(sandbox, database_url, tmp_path, time_scale=SCALE)
    probe_interval = 60 * SCALE

    async with daemon_in_process(settings):
        # When the bot token is revoked before it is posted
        revoked = sandbox.discord.inject("revoked_token")

        async def rejected() -> bool:
            async with session_factory() as session:
                row = await session.get(ServiceState, "discord")
            return row is not None and row.health == "credentials_rejected"

        # Then the reminder's refusal parks Discord for everyone (no key had to run)
        await wait_for(rejected, timeout=30, message="Discord marked rejected")
        await asyncio.sleep(2 * probe_interval)
        during = [r.route for r in sandbox.discord.request_log if r.status == 401]
        held = await reminder_row(session_factory, meeting_id)
        revoked.clear()

        # and once the token works the probe lets it be posted, once
        async def sent() -> bool:
            return (await reminder_row(session_factory, meeting_id)).status == "sent"

        await wait_for(sent, timeout=30, message="the reminder after the token works")
    assert len(sandbox.discord.messages(seeded.channel_id)) == 1
    assert held.status != "sent"
    # the posts were not retried against Discord meanwhile: the probes are all it saw
    assert during.count(MESSAGES) <= 1, during
    assert len(during) <= 1 + 3, during  # the first refusal, then one probe an interval
    # one Sentry event for the streak, none per reminder attempt
    assert [e for e in sentry_events if e["tags"].get("sync_type") == "reminders"
            and e["tags"].get("error_kind") != "credentials_rejected"] == []
    assert len([e for e in sentry_events
                if e["tags"].get("error_kind") == "credentials_rejected"]) == 1
