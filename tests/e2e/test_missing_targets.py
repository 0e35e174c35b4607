"""A channel deleted in Discord, or a calendar deleted or no longer shared in Google, is a
missing target: one needs-attention key naming the id and the column to fix, retried at
the capped interval (at most one call a scaled minute on it, never fast backoff), no
breaker opened, and `drift` says it is gone instead of promising to restore it. Real
daemon processes against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from core.db.models import Group, Meeting, SyncState, User
from core.db.session import create_engine, create_session_factory
from core.group_joining import join_group
from core.sandbox import Sandbox, start_sandbox
from core.sandbox.reqlog import RequestRecord
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for
from tests.world import GUILD

ROOT = Path(__file__).resolve().parents[2]
SCALE = 0.01
MINUTE = 60 * SCALE  # the backoff cap, scaled
WATCHED_MINUTES = 8  # scaled minutes the calls on the missing target are counted over
TEXT, ANN, BOB = "871000000000000001", "871000000000000008", "871000000000000009"
CALENDAR = "cohort-1@group.calendar.google.com"

pytestmark = pytest.mark.slow


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISCORD_", "GOOGLE_", "SENTRY_", "ADMIN_"))}
    env.update({"DATABASE_URL": database_url, "LOG_FORMAT": "json", "ADMIN_PORT": "0",
                "TIME_SCALE": str(SCALE), "OUTBOX_POLL_SECONDS": "0.1",
                "SHUTDOWN_TIMEOUT_SECONDS": "2", "PYTHONPATH": str(ROOT), **extra})
    return env


def discord_env(database_url: str, sandbox: Sandbox) -> dict[str, str]:
    return env_for(database_url, ENABLED_SERVICES="discord",
                   DISCORD_BOT_TOKEN=sandbox.discord_bot_token,
                   DISCORD_API_BASE_URL=sandbox.discord_base_url)


def calendar_env(database_url: str, sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    key = sandbox.write_service_account_file(tmp / "sa.json")
    return env_for(database_url, ENABLED_SERVICES="calendar",
                   GOOGLE_CREDENTIALS_FILE=str(key),
                   GOOGLE_IMPERSONATE_SUBJECT=sandbox.impersonate_subject,
                   GOOGLE_CALENDAR_ENDPOINT=sandbox.calendar_endpoint)


async def seed(database_url: str, sandbox: Sandbox) -> int:
    """A group with a text channel and a calendar (one meeting next week); Ann joins."""
    sandbox.discord.add_guild(GUILD, bot_role_position=50)
    sandbox.discord.add_channel(TEXT, GUILD, "cohort", type=0)
    for user, name in ((ANN, "ann"), (BOB, "bob")):
        sandbox.discord.add_user(user, name)
        sandbox.discord.add_member(GUILD, user)
    sandbox.calendar.add_calendar(CALENDAR)
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            group = Group(name="Cohort", discord_guild_id=GUILD, discord_text_channel_id=TEXT,
                          calendar_id=CALENDAR)
            ann = User(email="ann@example.org", discord_user_id=ANN, display_name="Ann")
            session.add_all([group, ann])
            await session.flush()
            session.add(Meeting(group_id=group.id, sequence=1, duration_minutes=60,
                                starts_at=datetime.now(UTC).replace(microsecond=0)
                                + timedelta(days=7)))
            await join_group(session, ann.id, group.id)
            return group.id
    finally:
        await engine.dispose()


async def bob_joins(database_url: str, group_id: int) -> None:
    """A membership change: the group's keys are owed again and run at once."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            bob = User(email="bob@example.org", discord_user_id=BOB, display_name="Bob")
            session.add(bob)
            await session.flush()
            await join_group(session, bob.id, group_id)
    finally:
        await engine.dispose()


async def rows(database_url: str) -> list[SyncState]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list((await session.scalars(select(SyncState))).all())
    finally:
        await engine.dispose()


async def key(database_url: str, sync_type: str) -> SyncState | None:
    return next((r for r in await rows(database_url) if r.sync_type == sync_type), None)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def calls_on(records: list[RequestRecord], target: str, since: float) -> list[float]:
    names = {target, quote(target, safe="")}
    return sorted(r.time for r in records
                  if r.time >= since and any(n in r.path for n in names))


def runs(log: Path) -> list[tuple[str, str, object, object]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") in ("sync_failed", "sync_succeeded"):
            found.append((event["timestamp"], event["reason"], event["sync_type"],
                          event.get("delay")))
    return found


def assert_at_most_one_call_a_minute(times: list[float], log: Path) -> None:
    """Counted over the watched scaled minutes from the first failure: one call a minute,
    and one spare for an answer a loaded machine delivered late. Fast backoff from 1 s
    would make six calls in the first minute alone."""
    assert times, "the missing target was never retried"
    window = [t for t in times if t < times[0] + WATCHED_MINUTES * MINUTE]
    assert len(window) >= WATCHED_MINUTES // 2, f"hardly retried: {runs(log)}"
    assert len(window) <= WATCHED_MINUTES + 2, (
        f"{len(window)} calls on the missing target in {WATCHED_MINUTES} scaled minutes, "
        f"{[round(b - a, 3) for a, b in itertools.pairwise(window)]} s apart "
        f"(the cap is {MINUTE} s); runs: {runs(log)}")


async def watch_and_stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """Let the daemon retry for the watched scaled minutes and a spare one (an observation
    window, not a backoff), then stop it: it must exit 0."""
    await asyncio.sleep((WATCHED_MINUTES + 1) * MINUTE)
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait, 15)
    assert process.returncode == 0, runs(log)


@dataclass(frozen=True)
class Watched:
    times: list[float]  # monotonic times of the calls on the lost target
    log: Path
    service: dict[str, Any]  # the key's service as ``status --json`` showed it, stuck
    drift: subprocess.CompletedProcess[str]


async def lose_and_watch(
    database_url: str, group_id: int, env: dict[str, str], tmp_path: Path, sync_type: str, *,
    ready: Callable[[], bool], lose: Callable[[], None], calls: Callable[[float], list[float]],
) -> Watched:
    """A daemon syncs the group until ``ready``; the target is lost and the group changes,
    so its ``sync_type`` key runs into it; the calls on the target are watched for
    WATCHED_MINUTES, then the daemon stops and ``drift --dry-run`` reads the group."""
    log = tmp_path / "daemon.log"
    daemon = spawn_run(env, log)
    try:
        await wait_for(ready, timeout=60, message=f"the group's first {sync_type} sync")
        lose()
        since = time.monotonic()
        await bob_joins(database_url, group_id)

        async def missing() -> bool:
            row = await key(database_url, sync_type)
            return row is not None and row.error_kind == "missing_target"

        await wait_for(missing, timeout=60, message=f"the {sync_type} key on a missing target")
        # (CLI runs in a thread: the sandbox answers from this event loop meanwhile)
        status = json.loads((await asyncio.to_thread(cli, env, "status", "--json")).stdout)
        await watch_and_stop(daemon, log)
    finally:
        daemon.kill()
    times = calls(since)  # before drift's own reads of the target
    (service,) = [s for s in status["services"] if s["name"] == sync_type]
    drift = await asyncio.to_thread(cli, env, "drift", "--group", str(group_id), "--dry-run")
    return Watched(times, log, service, drift)


async def test_a_deleted_channel_is_one_key_naming_it_retried_once_a_minute_and_drift_says_so(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        group_id = await seed(database_url, sandbox)
        # Given the group's channel deleted in Discord, when the group changes
        seen = await lose_and_watch(
            database_url, group_id, discord_env(database_url, sandbox), tmp_path, "discord",
            ready=lambda: ANN in sandbox.discord.overwrites(TEXT),
            lose=lambda: sandbox.discord.delete_channel(TEXT),
            calls=lambda since: calls_on(sandbox.discord.request_log, TEXT, since))

    # Then one needs-attention key, naming the channel and the column to fix
    (stuck,) = [r for r in await rows(database_url) if r.status == "needs_attention"]
    assert (stuck.sync_type, stuck.group_id) == ("discord", group_id)
    assert TEXT in (stuck.last_error or "")
    assert "groups.discord_text_channel_id" in (stuck.last_error or "")
    assert "Unknown Channel" in (stuck.last_error or "")  # Discord's own words
    # retried at the capped interval from the first failure, not in fast backoff
    assert_at_most_one_call_a_minute(seen.times, seen.log)
    assert stuck.attempt >= 2
    # and Discord answering 404 is no service failure: the breaker stayed closed
    # ("unknown" until the daemon publishes its clients; what matters is that it never opens)
    assert seen.service["breaker"]["state"] in ("closed", "unknown")
    # And drift says the channel was deleted, not that our overwrites would be restored
    assert seen.drift.returncode == 0, seen.drift.stderr
    assert f"channel {TEXT}: channel deleted" in seen.drift.stdout
    assert "groups.discord_text_channel_id" in seen.drift.stdout
    assert "would be restored" not in seen.drift.stdout


def delete_calendar(sandbox: Sandbox) -> None:
    sandbox.calendar.delete_calendar(CALENDAR)


def unshare_calendar(sandbox: Sandbox) -> None:
    sandbox.calendar.share_calendar(CALENDAR, "none")


@pytest.mark.parametrize("lose", [delete_calendar, unshare_calendar],
                         ids=["deleted", "unshared"])
async def test_a_missing_calendar_is_one_key_naming_it_retried_once_a_minute_and_drift_says_so(
    database_url: str, tmp_path: Path, lose: Callable[[Sandbox], None]
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        group_id = await seed(database_url, sandbox)
        # Given the group's calendar deleted, or no longer shared, when the group changes
        seen = await lose_and_watch(
            database_url, group_id, calendar_env(database_url, sandbox, tmp_path), tmp_path,
            "calendar",
            ready=lambda: len(sandbox.calendar.events(CALENDAR)) == 1,
            lose=lambda: lose(sandbox),
            calls=lambda since: calls_on(sandbox.calendar.request_log, CALENDAR, since))

    # Then one needs-attention key, naming the calendar and the column to fix
    (stuck,) = [r for r in await rows(database_url) if r.status == "needs_attention"]
    assert (stuck.sync_type, stuck.group_id) == ("calendar", group_id)
    assert CALENDAR in (stuck.last_error or "")
    assert "groups.calendar_id" in (stuck.last_error or "")
    assert "404 Not Found" in (stuck.last_error or "")  # Google's own words
    assert_at_most_one_call_a_minute(seen.times, seen.log)
    assert stuck.attempt >= 2
    assert seen.service["breaker"]["state"] in ("closed", "unknown")  # never "open"
    # And drift says the calendar is missing
    assert seen.drift.returncode == 0, seen.drift.stderr
    assert f"calendar {CALENDAR}: calendar missing" in seen.drift.stdout
    assert "would be" not in seen.drift.stdout
