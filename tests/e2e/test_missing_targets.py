"""A channel deleted in Discord, or a calendar deleted or no longer shared in Google, is a
missing target: one needs-attention key naming the id and the column to fix, retried at
the capped interval (at most one call a scaled minute on it, never fast backoff), no
breaker opened, and `drift` says it is gone instead of promising to restore it. Real
daemon processes against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.sandbox import Sandbox, start_sandbox
from tests.e2e.daemon_world import (
    ANN,
    CALENDAR,
    TEXT,
    bob_joins,
    calendar_env,
    calls_on,
    cli,
    discord_env,
    key,
    rows,
    seed,
)
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for

SCALE = 0.01
MINUTE = 60 * SCALE  # the backoff cap, scaled
WATCHED_MINUTES = 8  # scaled minutes the calls on the missing target are counted over

pytestmark = pytest.mark.slow


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
    # Retried, not given up (a loaded machine runs the capped retries late, never early)
    assert len(window) >= 2, f"hardly retried: {runs(log)}"
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
