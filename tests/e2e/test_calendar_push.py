"""Calendar push with a real daemon and the real Google client against the sandbox, on
SQLite and PostgreSQL: with CALENDAR_PUSH_URL set the daemon watches the followed
calendar with a secret channel token; the sandbox's notifications wake the incremental
list at once (the periodic list is set far off), a notification with a wrong token is
refused (401, logged without the token), channels are renewed before they expire (the
new one first), stopped on shutdown, and their tokens never reach the log."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from core.db.models import CalendarPushChannel, CalendarSyncToken, Rsvp
from core.sandbox import Sandbox, start_sandbox
from core.sandbox.reqlog import RequestRecord
from tests.e2e.daemon_world import CALENDAR, calendar_env, free_port, seed
from tests.e2e.test_calendar_changes import change_lists, read
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

SCALE = 0.05
WATCH = "POST /calendars/{calendar_id}/events/watch"
STOP = "POST /channels/stop"


def log_events(log: Path, name: str) -> list[dict[str, Any]]:
    events = []
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name:
            events.append(event)
    return events


@asynccontextmanager
async def pushed(database_url: str, sandbox: Sandbox, tmp_path: Path, **extra: str
                 ) -> AsyncIterator[tuple[str, Path, Any]]:
    """A daemon watching the seeded calendar (periodic lists a day of real time apart);
    yields the push URL, its log and the process; SIGTERM (exit 0) after."""
    await seed(database_url, sandbox)
    port = free_port()
    url = f"http://127.0.0.1:{port}/calendar/push"
    env = calendar_env(database_url, sandbox, tmp_path, scale=SCALE, ADMIN_PORT=str(port),
                       CALENDAR_PUSH_URL=url,
                       CALENDAR_CHANGES_SECONDS="2000000",
                       DRIFT_SWEEP_PERIOD_SECONDS="1000000000",
                       DRIFT_SWEEP_TICK_SECONDS="1000000000", **extra)
    log = tmp_path / "daemon.log"
    daemon = spawn_run(env, log)
    try:
        await wait_for(lambda: sandbox.calendar.push_channels(), timeout=60,
                       message="a watch channel on the calendar")
        yield url, log, daemon
        daemon.send_signal(signal.SIGTERM)
        await asyncio.to_thread(daemon.wait, 15)
        assert daemon.returncode == 0
    finally:
        daemon.kill()


async def post(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as response:
        body = await response.json(content_type=None) if response.status != 204 else None
        return response.status, body


def incremental_lists(log: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in change_lists(log) if "syncToken" in r.query]


async def test_a_notification_wakes_the_list_and_a_wrong_token_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.calendar.add_calendar(CALENDAR)
        async with pushed(database_url, sandbox, tmp_path) as (url, log, _daemon):
            (channel,) = sandbox.calendar.push_channels()
            # The channel's first list (woken as it opened) stored the token.
            async def token_stored() -> bool:
                return bool(await read(database_url, select(CalendarSyncToken.sync_token)))

            await wait_for(token_stored, timeout=30, message="a list woken by a notification")
            (token,) = await read(database_url, select(CalendarPushChannel.token))
            (event,) = await wait_for(lambda: sandbox.calendar.events(CALENDAR), timeout=30,
                                      message="our event")

            # Settled: the notification of our event's insert has had its list.
            def insert_listed() -> bool:
                last = sandbox.calendar.push_deliveries()[-1]["time"]
                return any(r.time >= last for r in incremental_lists(sandbox.calendar.request_log))

            await wait_for(insert_listed, timeout=30, message="the insert's notification listed")
            await asyncio.sleep(0.3)
            # A forged notification: the channel's id, another token
            requests = len(sandbox.calendar.request_log)
            forged_at = sandbox.clock.now()
            status, body = await post(url, {
                "X-Goog-Channel-ID": channel["id"], "X-Goog-Channel-Token": "forged",
                "X-Goog-Resource-ID": channel["resourceId"], "X-Goog-Resource-State": "exists",
                "X-Goog-Message-Number": "99"})
            assert status == 401
            assert body["status"] == 401
            assert "wrong channel token" in body["detail"]
            assert (await post(url, {"X-Goog-Channel-ID": "nobody's",
                                     "X-Goog-Resource-State": "exists"}))[0] == 401
            await asyncio.sleep(0.5)
            # Any list since is explained by a genuine notification, not the forged ones.
            woke = incremental_lists(sandbox.calendar.request_log[requests:])
            genuine = [d for d in sandbox.calendar.push_deliveries() if d["time"] >= forged_at]
            assert len(woke) <= len(genuine), (woke, genuine)

            # Ann accepts in Google: the sandbox notifies, the daemon lists within 1 s
            sandbox.calendar.set_attendee_response(CALENDAR, event["id"], "ann@example.org",
                                                   "accepted")

            async def accepted() -> bool:
                return await read(database_url, select(Rsvp.response)) == ["accepted"]

            await wait_for(accepted, timeout=10, message="Ann's answer imported")
            note = sandbox.calendar.push_deliveries()[-1]
            assert (note["state"], note["status"]) == ("exists", 204)
            (listed, *_) = [r for r in incremental_lists(sandbox.calendar.request_log)
                            if r.time >= note["time"]]
            assert listed.time - note["time"] < 1.0
        # Shutdown stopped the channel
        assert sandbox.calendar.push_channels() == []
        assert sandbox.calendar.stopped_push_channels() == [channel["id"]]
        assert await read(database_url, select(CalendarPushChannel.channel_id)) == []

    refused = log_events(log, "calendar_push_refused")
    assert [r["why"] for r in refused] == ["wrong channel token", "unknown channel"]
    text = log.read_text()
    assert token not in text
    assert "forged" not in text


async def test_channels_are_renewed_before_they_expire_new_one_first(
    database_url: str, tmp_path: Path
) -> None:
    # 100 s channels (5 s real), replaced with 60 s (3 s real) left, checked every 0.5 s.
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.calendar.add_calendar(CALENDAR)
        async with pushed(database_url, sandbox, tmp_path, CALENDAR_PUSH_TTL_SECONDS="100",
                          CALENDAR_PUSH_RENEW_BEFORE_SECONDS="60",
                          CALENDAR_PUSH_CHECK_SECONDS="10"):
            await wait_for(lambda: len(sandbox.calendar.stopped_push_channels()) >= 2,
                           timeout=30, message="two renewals")
            live = sandbox.calendar.push_channels()
        log = sandbox.calendar.request_log
    watches = [r for r in log if r.route == WATCH and r.status == 200]
    stops = [r for r in log if r.route == STOP]
    assert len(live) == 1
    assert all(s.status == 204 for s in stops)  # each stopped before it expired
    # Overlap: channel n is stopped only after channel n+1 was watched.
    for n, stop in enumerate(stops[:2]):
        assert watches[n + 1].time < stop.time
        assert stop.body["id"] == watches[n].body["id"]
