"""A bot token revoked while 50 groups are owed parks Discord as a whole: one request per
probe interval for the whole outage (no call, claim or record per key), one log line and
one Sentry event for the streak, `status`, `status --json` and `/api/overview` say
`credentials_rejected` with Discord's words, since when and the variable to fix; once the
token works again every group converges with no operator action. Real daemon processes
against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db.models import Group, Meeting, ServiceState, User
from core.db.session import create_engine, create_session_factory
from core.group_joining import join_group
from core.sandbox import Sandbox, start_sandbox
from tests.e2e.daemon_world import calendar_env, cli, env_for, rows
from tests.e2e.test_secrets_stay_home import leaks, sentry_server
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for
from tests.world import GUILD

pytestmark = pytest.mark.slow

SCALE = 0.02
INTERVAL = 60 * SCALE  # the probe interval, scaled
OUTAGE_INTERVALS = 5
GROUPS = 50
ADMIN_TOKEN = "creds-test-admin-token-" + "4b7e1d9a"
# Requests already on the wire when Discord's first 401 came back (one per run slot at
# most) land within this many seconds of it; everything later is the probe's.
IN_FLIGHT_GRACE = 0.3


def events(log: Path, name: str | None = None) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if name is None or event.get("event") == name:
            found.append(event)
    return found


async def owe_groups(database_url: str, sandbox: Sandbox, count: int) -> list[str]:
    """``count`` groups with a text channel and one member each, joined in one commit."""
    channels = []
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            for n in range(count):
                channel, user_id = f"8720000000000{n:05d}", f"8730000000000{n:05d}"
                sandbox.discord.add_channel(channel, GUILD, f"cohort-{n}", type=0)
                sandbox.discord.add_user(user_id, f"member{n}")
                sandbox.discord.add_member(GUILD, user_id)
                group = Group(name=f"Cohort {n}", discord_guild_id=GUILD,
                              discord_text_channel_id=channel)
                user = User(email=f"m{n}@example.org", discord_user_id=user_id,
                            display_name=f"Member {n}")
                session.add_all([group, user])
                await session.flush()
                await join_group(session, user.id, group.id)
                channels.append(channel)
    finally:
        await engine.dispose()
    return channels


async def service_row(database_url: str, service: str) -> ServiceState | None:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return await session.get(ServiceState, service)
    finally:
        await engine.dispose()


async def marked_rejected(database_url: str, service: str, message: str) -> ServiceState:
    """The service's row once a daemon marked it credentials_rejected."""
    async def rejected() -> ServiceState | None:
        row = await service_row(database_url, service)
        return row if row is not None and row.health == "credentials_rejected" else None

    found: ServiceState = await wait_for(rejected, timeout=60, message=message)
    return found


def admin_get(log: Path, path: str) -> httpx.Response:
    (listening,) = events(log, "admin_api_listening")
    response = httpx.get(f"{listening['url']}{path}", timeout=15,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    response.raise_for_status()
    return response


def overview(log: Path) -> dict[str, Any]:
    body: dict[str, Any] = admin_get(log, "/api/overview").json()
    return body


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return float(sample.value)
    return None


def service(view: dict[str, Any], name: str) -> dict[str, Any]:
    (entry,) = [s for s in view["services"] if s["name"] == name]
    return entry


async def test_a_revoked_bot_token_parks_discord_probes_once_a_minute_and_converges_after(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox, sentry_server() as sentry:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        dsn = f"http://5f0c1e2d3b4a49c8a7e6d5c4b3a2f1e0@127.0.0.1:{sentry.port}/42"
        env = env_for(database_url, ENABLED_SERVICES="discord",
                      DISCORD_BOT_TOKEN=sandbox.discord_bot_token,
                      DISCORD_API_BASE_URL=sandbox.discord_base_url,
                      ADMIN_TOKEN=ADMIN_TOKEN, SENTRY_DSN=dsn, TIME_SCALE=str(SCALE))
        log = tmp_path / "daemon.log"
        daemon = spawn_run(env, log)
        try:
            await wait_for(lambda: events(log, "daemon_started"), timeout=60,
                           message="the daemon to start")
            # Given the bot token revoked in Discord
            revoked = sandbox.discord.inject("revoked_token")
            # When 50 groups become owed
            channels = await owe_groups(database_url, sandbox, GROUPS)

            row = await marked_rejected(database_url, "discord", "Discord marked rejected")
            unauthorized = [r.time for r in sandbox.discord.request_log if r.status == 401]
            first_401 = min(unauthorized)
            status = json.loads((await asyncio.to_thread(cli, env, "status", "--json")).stdout)
            text = (await asyncio.to_thread(cli, env, "status")).stdout
            view = await asyncio.to_thread(overview, log)
            scraped = (await asyncio.to_thread(admin_get, log, "/metrics")).text
            keys_during = await rows(database_url)
            parked = next(r for r in keys_during if r.sync_type == "discord")
            retry = await asyncio.to_thread(cli, env, "retry", "discord", str(parked.group_id))
            await asyncio.sleep(OUTAGE_INTERVALS * INTERVAL)
            cleared_at = time.monotonic()
            revoked.clear()
            # Then, the token working again, every group converges by itself
            await wait_for(lambda: all(sandbox.discord.overwrites(c) for c in channels),
                           timeout=90, message="every group's overwrite")

            async def settled() -> bool:
                return all(r.status == "ok" for r in await rows(database_url))

            await wait_for(settled, timeout=60, message="every key settled")
            healthy = await service_row(database_url, "discord")
            after = await asyncio.to_thread(overview, log)
            daemon.send_signal(signal.SIGTERM)
            await asyncio.to_thread(daemon.wait, 15)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        requests = sandbox.discord.request_log

    # During the outage Discord saw one request per probe interval, not one per key
    outage = [r for r in requests if first_401 + IN_FLIGHT_GRACE <= r.time < cleared_at]
    in_flight = [r for r in requests if first_401 <= r.time < first_401 + IN_FLIGHT_GRACE]
    allowed = math.ceil((cleared_at - first_401) / INTERVAL) + 1
    assert len(outage) <= allowed, [(round(r.time - first_401, 3), r.route) for r in outage]
    assert len(outage) >= OUTAGE_INTERVALS - 2, "the probe hardly asked"
    assert {r.route for r in outage} <= {"GET /users/@me"}
    assert len(in_flight) <= 8  # at most one per run slot was already on its way
    # and no key was claimed, recorded or retried per key: one key holds the streak
    failed = [r for r in keys_during if r.attempt > 0]
    assert len(failed) <= 8, [(r.group_id, r.error_kind) for r in failed]
    assert any(r.error_kind == "credentials_rejected" for r in failed)
    # The service's row: Discord's words, since when, the variable to fix
    assert row.health_reason == "401: Unauthorized"
    assert row.health_variable == "DISCORD_BOT_TOKEN"
    assert row.health_since is not None
    assert row.next_probe_at is not None
    # status --json and /api/overview say the same
    for entry in (service(status, "discord"), service(view, "discord")):
        assert entry["state"]["state"] == "credentials_rejected"
        assert entry["state"]["reason"] == "401: Unauthorized"
        assert entry["state"]["variable"] == "DISCORD_BOT_TOKEN"
        assert entry["state"]["since"]
        assert entry["state"]["next_probe_at"]
        assert entry["credentials"]["rejected"] == "401: Unauthorized"
    assert "CREDENTIALS REJECTED" in text, text
    assert "DISCORD_BOT_TOKEN" in text
    assert "401: Unauthorized" in text
    # and the waiting reason of the service's keys says so
    waiting = [k["waiting"] for k in status["pending"]["items"] + status["failing"]["items"]
               if k.get("waiting") and k["sync_type"] == "discord"]
    assert waiting
    assert {w["code"] for w in waiting} == {"credentials_rejected"}, waiting
    # An operator's retry is refused with the reason, not queued behind the rejection
    assert retry.returncode == 1, retry.stdout + retry.stderr
    assert "rejected the credentials" in retry.stdout + retry.stderr
    # and the metrics: the state gauge, one streak counted
    assert metric(scraped, "groupsync_service_state", service="discord",
                  state="credentials_rejected") == 1.0
    assert metric(scraped, "groupsync_service_state", service="discord", state="healthy") == 0.0
    assert metric(scraped, "groupsync_credentials_rejected_total", service="discord") == 1.0
    # After the token works again the state clears everywhere
    assert healthy is not None
    assert healthy.health == "healthy"
    assert service(after, "discord")["state"]["state"] == "healthy"
    # One log line and one Sentry event for the streak, one line when it ended
    assert len(events(log, "service_credentials_rejected")) == 1
    assert len(events(log, "service_credentials_accepted")) == 1
    reports = [e for e in sentry.events() if "credentials" in json.dumps(e)]
    assert len(reports) == 1, reports
    # and the token is nowhere in what left the process
    secrets = [sandbox.discord_bot_token, ADMIN_TOKEN]
    assert not leaks(log.read_text(), secrets)
    assert not leaks(sentry.received(), secrets)
    assert not leaks(json.dumps(status) + json.dumps(view), secrets)


async def test_a_429_storm_only_slows_discord_down_and_is_never_credentials_rejected(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        env = env_for(database_url, ENABLED_SERVICES="discord",
                      DISCORD_BOT_TOKEN=sandbox.discord_bot_token,
                      DISCORD_API_BASE_URL=sandbox.discord_base_url,
                      ADMIN_TOKEN=ADMIN_TOKEN, TIME_SCALE=str(SCALE))
        log = tmp_path / "daemon.log"
        daemon = spawn_run(env, log)
        try:
            await wait_for(lambda: events(log, "daemon_started"), timeout=60,
                           message="the daemon to start")
            # Given Discord answering 429 to everything (a long Retry-After)
            storm = sandbox.discord.inject("429", retry_after=200.0)
            # When 50 groups become owed and the daemon keeps meeting the storm
            channels = await owe_groups(database_url, sandbox, GROUPS)
            seen: set[str] = set()
            deadline = time.monotonic() + OUTAGE_INTERVALS * INTERVAL
            while time.monotonic() < deadline:
                row = await service_row(database_url, "discord")
                seen.add(row.health if row is not None else "healthy")
                seen.add(service(await asyncio.to_thread(overview, log), "discord")
                         ["state"]["state"])
                await asyncio.sleep(INTERVAL / 2)
            limited = [r for r in sandbox.discord.request_log if r.status == 429]
            storm.clear()
            await wait_for(lambda: all(sandbox.discord.overwrites(c) for c in channels),
                           timeout=90, message="every group's overwrite")
            daemon.send_signal(signal.SIGTERM)
            await asyncio.to_thread(daemon.wait, 15)
        finally:
            if daemon.poll() is None:
                daemon.kill()

    # Then the storm was met (and slowed the daemon down), but nothing said "rejected"
    assert limited
    assert "credentials_rejected" not in seen, seen
    assert "rate_limited" in seen, seen
    assert not events(log, "service_credentials_rejected")


async def owe_calendars(database_url: str, sandbox: Sandbox, count: int) -> list[str]:
    """``count`` groups with a calendar, a meeting next week and one member each."""
    calendars = []
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            for n in range(count):
                calendar = f"cohort-{n}@group.calendar.google.com"
                sandbox.calendar.add_calendar(calendar)
                group = Group(name=f"Cohort {n}", calendar_id=calendar)
                user = User(email=f"m{n}@example.org", display_name=f"Member {n}")
                session.add_all([group, user])
                await session.flush()
                session.add(Meeting(group_id=group.id, sequence=1, duration_minutes=60,
                                    starts_at=datetime.now(UTC).replace(microsecond=0)
                                    + timedelta(days=7)))
                await join_group(session, user.id, group.id)
                calendars.append(calendar)
    finally:
        await engine.dispose()
    return calendars


CALENDAR_GROUPS = 20


async def test_a_refused_google_token_exchange_parks_the_calendar_and_converges_after(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        env = {**calendar_env(database_url, sandbox, tmp_path), "ADMIN_TOKEN": ADMIN_TOKEN,
               "TIME_SCALE": str(SCALE)}
        log = tmp_path / "daemon.log"
        daemon = spawn_run(env, log)
        try:
            await wait_for(lambda: events(log, "daemon_started"), timeout=60,
                           message="the daemon to start")
            # Given Google refusing groupsync's credentials (its key no longer valid)
            revoked = sandbox.calendar.inject("revoked_token")
            # When 20 groups' calendars become owed
            calendars = await owe_calendars(database_url, sandbox, CALENDAR_GROUPS)

            row = await marked_rejected(database_url, "calendar", "the calendar marked rejected")
            first = min(r.time for r in sandbox.calendar.request_log if r.status in (400, 401))
            view = await asyncio.to_thread(overview, log)
            await asyncio.sleep(OUTAGE_INTERVALS * INTERVAL)
            cleared_at = time.monotonic()
            revoked.clear()
            # Then, Google accepting again, every group's event is there by itself
            await wait_for(lambda: all(sandbox.calendar.events(c) for c in calendars),
                           timeout=90, message="every group's event")
            healthy = await service_row(database_url, "calendar")
            daemon.send_signal(signal.SIGTERM)
            await asyncio.to_thread(daemon.wait, 15)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        requests = sandbox.calendar.request_log

    # During the outage Google saw one token exchange per probe interval, nothing per key
    outage = [r for r in requests if first + IN_FLIGHT_GRACE <= r.time < cleared_at]
    allowed = math.ceil((cleared_at - first) / INTERVAL) + 1
    assert len(outage) <= allowed, [(round(r.time - first, 3), r.route) for r in outage]
    assert {r.route for r in outage} <= {"POST /token"}
    # with Google's words and the variable to fix, in the row and the overview
    assert row.health_reason == "invalid_grant: Invalid JWT Signature."
    assert row.health_variable == "GOOGLE_CREDENTIALS_FILE"
    state = service(view, "calendar")["state"]
    assert state["state"] == "credentials_rejected"
    assert state["reason"] == "invalid_grant: Invalid JWT Signature."
    assert healthy is not None
    assert healthy.health == "healthy"
    assert len(events(log, "service_credentials_rejected")) == 1


async def test_a_standby_that_takes_over_keeps_the_rejected_service_parked(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no standby")
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        env = env_for(database_url, ENABLED_SERVICES="discord",
                      DISCORD_BOT_TOKEN=sandbox.discord_bot_token,
                      DISCORD_API_BASE_URL=sandbox.discord_base_url, TIME_SCALE=str(SCALE))
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        first = spawn_run(env, first_log)
        second = None
        try:
            await wait_for(lambda: events(first_log, "daemon_started"), timeout=60,
                           message="the first daemon to lead")
            second = spawn_run(env, second_log)
            await wait_for(lambda: events(second_log, "standing_by"), timeout=60,
                           message="the second daemon to stand by")
            # Given the active daemon found the bot token rejected while groups are owed
            revoked = sandbox.discord.inject("revoked_token")
            channels = await owe_groups(database_url, sandbox, GROUPS)

            await marked_rejected(database_url, "discord", "Discord marked rejected")

            async def first_key_recorded() -> int:  # the run marks the row, then records
                return sum(r.attempt for r in await rows(database_url))

            recorded = await wait_for(first_key_recorded, timeout=60,
                                      message="the key that met the rejection recorded")
            # When it dies and the standby takes over
            first.kill()
            await asyncio.to_thread(first.wait, 15)
            await wait_for(lambda: events(second_log, "daemon_started"), timeout=60,
                           message="the standby to take over")
            took_over = time.monotonic()
            await asyncio.sleep(OUTAGE_INTERVALS * INTERVAL)
            watched = time.monotonic()
            keys_after = await rows(database_url)
            still = await service_row(database_url, "discord")
            revoked.clear()
            # Then, once the token works, the new leader's probe resumes every group
            await wait_for(lambda: all(sandbox.discord.overwrites(c) for c in channels),
                           timeout=90, message="every group's overwrite")
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 15)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
        requests = sandbox.discord.request_log

    # The new leader kept the keys parked: its probe is all Discord saw, nothing per key
    after = [r for r in requests if took_over <= r.time < watched]
    assert {r.route for r in after} <= {"GET /users/@me"}, [r.route for r in after]
    assert len(after) <= math.ceil((watched - took_over) / INTERVAL) + 1
    assert sum(r.attempt for r in keys_after) == recorded  # no key claimed and recorded
    assert still is not None
    assert still.health == "credentials_rejected"
    # and it said nothing new about the same streak
    assert not events(second_log, "service_credentials_rejected")
    assert len(events(second_log, "service_credentials_accepted")) == 1
