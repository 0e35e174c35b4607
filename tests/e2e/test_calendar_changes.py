"""Calendar incremental sync with a real daemon and the real Google client against the
sandbox, on SQLite and PostgreSQL: each tick lists only what changed since the stored
syncToken; an answer given in Google becomes an RSVP, an event of ours edited, moved or
deleted by a person is put right in the tick that saw it (no drift sweep, no change in
the database), a person's own event is never written, and an expired token (410) costs
one full list before the lists are incremental again."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, select

from core.db.models import CalendarSyncToken, Meeting, Rsvp
from core.db.session import create_engine, create_session_factory
from core.sandbox import Sandbox, start_sandbox
from core.sandbox.reqlog import RequestRecord
from core.syncers.calendar_plan import event_id_for
from tests.e2e.daemon_world import CALENDAR, calendar_env, cli, env_for, seed
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

SCALE = 0.05
PERIOD = 20.0  # CALENDAR_CHANGES_SECONDS, nominal: one second of real time at SCALE
LIST = "GET /calendars/{calendar_id}/events"
WRITES = ("PUT", "PATCH", "POST", "DELETE")


def change_lists(log: list[RequestRecord]) -> list[RequestRecord]:
    """The incremental job's lists: the whole calendar (the syncs filter by our tag)."""
    return [r for r in log if r.route == LIST and "privateExtendedProperty" not in r.query]


async def read(database_url: str, statement: Select[Any]) -> list[Any]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list((await session.execute(statement)).scalars())
    finally:
        await engine.dispose()


@asynccontextmanager
async def following(database_url: str, sandbox: Sandbox, tmp_path: Path
                    ) -> AsyncIterator[tuple[str, Path]]:
    """A daemon following the seeded group's calendar, its first list applied (the token
    stored); yields our event's id and the daemon's log; stops it (exit 0) after."""
    group_id = await seed(database_url, sandbox)
    env = calendar_env(database_url, sandbox, tmp_path, scale=SCALE,
                       CALENDAR_CHANGES_SECONDS=str(PERIOD),
                       DRIFT_SWEEP_PERIOD_SECONDS="1000000000",
                       DRIFT_SWEEP_TICK_SECONDS="1000000000")
    log = tmp_path / "daemon.log"
    daemon = spawn_run(env, log)
    try:
        (meeting_id,) = await read(database_url, select(Meeting.id)
                                   .where(Meeting.group_id == group_id))
        event_id = event_id_for(meeting_id)
        await wait_for(lambda: any(e["id"] == event_id for e in sandbox.calendar.events(CALENDAR)),
                       timeout=60, message="our event")

        async def token_stored() -> bool:
            return bool(await read(database_url, select(CalendarSyncToken.sync_token)))

        await wait_for(token_stored, timeout=60, message="the first list's sync token")
        yield event_id, log
        daemon.send_signal(signal.SIGTERM)
        await asyncio.to_thread(daemon.wait, 15)
        assert daemon.returncode == 0
    finally:
        daemon.kill()


async def repaired_in_the_tick_that_saw_it(
    sandbox: Sandbox, event_id: str, change: Callable[[], None],
    repaired: Callable[[dict[str, Any]], bool],
) -> None:
    log = sandbox.calendar.request_log
    before = len(log)
    change()
    await wait_for(lambda: repaired(sandbox.calendar.get_event(CALENDAR, event_id)),
                   timeout=30, message="the event put right")
    after = log[before:]
    write = next(r for r in after if r.method in WRITES and event_id in r.path)
    # Put right by the tick that saw the change (the job runs the key before its next
    # tick can list again): at most one list between the change and the write, the list
    # in flight when the change was made counting as that tick.
    seen = [r for r in change_lists(after) if r.time < write.time]
    assert len(seen) <= 1, [(r.route, r.query) for r in after]
    assert all("syncToken" in r.query for r in change_lists(after))  # incremental lists


async def test_answers_and_peoples_edits_come_in_through_incremental_lists(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.calendar.add_calendar(CALENDAR)
        theirs = sandbox.calendar.store.insert(CALENDAR, {
            "summary": "Someone's own meeting",
            "start": {"dateTime": "2030-01-01T10:00:00+00:00"},
            "end": {"dateTime": "2030-01-01T11:00:00+00:00"}}, "someone@example.org")
        async with following(database_url, sandbox, tmp_path) as (event_id, log):
            desired = sandbox.calendar.get_event(CALENDAR, event_id)

            # An answer given in Google becomes Ann's RSVP
            sandbox.calendar.set_attendee_response(CALENDAR, event_id, "ann@example.org",
                                                   "accepted")

            async def accepted() -> bool:
                return await read(database_url, select(Rsvp.response)) == ["accepted"]

            await wait_for(accepted, timeout=30, message="Ann's answer imported")

            # A person edits the title and moves the event: put right, the answer kept
            await repaired_in_the_tick_that_saw_it(
                sandbox, event_id,
                lambda: sandbox.calendar.edit_event_as_person(CALENDAR, event_id, {
                    "summary": "Moved by someone",
                    "start": {"dateTime": "2031-05-05T09:00:00+00:00"},
                    "end": {"dateTime": "2031-05-05T10:00:00+00:00"}}),
                lambda e: e["summary"] == desired["summary"] and e["start"] == desired["start"])
            # A person deletes it: restored
            await repaired_in_the_tick_that_saw_it(
                sandbox, event_id,
                lambda: sandbox.calendar.delete_event_as_person(CALENDAR, event_id),
                lambda e: e["status"] == "confirmed")
            # Our own repairs echo back in later lists and owe nothing more
            settled = len(sandbox.calendar.request_log)
            await wait_for(lambda: len(change_lists(sandbox.calendar.request_log[settled:])) >= 3,
                           timeout=30, message="three more ticks")
            later = sandbox.calendar.request_log[settled:]

        assert not [r for r in later if r.method in WRITES], "a repair of our own repair"
        assert not [r for r in sandbox.calendar.request_log
                    if r.method in WRITES and theirs["id"] in r.path], "a person's event written"
        answers = {a["email"]: a["responseStatus"]
                   for a in sandbox.calendar.get_event(CALENDAR, event_id)["attendees"]}
        assert answers == {"ann@example.org": "accepted"}
        changes = [json.loads(line) for line in log.read_text().splitlines()
                   if '"calendar_live_change"' in line]
        assert [c["found"] for c in changes] == [
            f"event {event_id}: start, end, summary", f"event {event_id}: deleted by a person"]


async def test_an_expired_sync_token_costs_one_full_list_then_lists_are_incremental_again(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        async with following(database_url, sandbox, tmp_path):
            log = sandbox.calendar.request_log
            before = len(log)
            sandbox.calendar.revoke_sync_tokens()
            await wait_for(lambda: len(change_lists(log[before:])) >= 5, timeout=30,
                           message="five lists after the tokens expired")
        after = change_lists(log[before:])

    gone = [n for n, r in enumerate(after) if r.status == 410]
    full = [n for n, r in enumerate(after) if "syncToken" not in r.query]
    assert len(gone) == 1, [(r.status, r.query) for r in after]
    assert full == [gone[0] + 1], [(r.status, r.query) for r in after]
    assert all("syncToken" in r.query and r.status == 200 for r in after[full[0] + 1:])


async def test_status_says_how_current_the_incremental_sync_is(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox, \
            following(database_url, sandbox, tmp_path):
        env = env_for(database_url)
        await asyncio.sleep(1.5)  # more than one tick: the lag is that of the last list
        shown = json.loads((await asyncio.to_thread(cli, env, "status", "--json")).stdout)
        (calendar,) = [s for s in shown["services"] if s["name"] == "calendar"]
        follow = calendar["changes"]
        assert follow["calendars"] == 1
        assert 0 <= follow["lag_seconds"] < 30, follow  # listed every second (real time)
        text = (await asyncio.to_thread(cli, env, "status")).stdout
        assert "changes listed for 1 calendar, the oldest" in text
