"""Drift made behind groupsync's back (a moderator, a person in Google Calendar) is
reported by ``drift --dry-run`` without a change, and put right, with one log line per
repair, by a retry of the key and by the drift sweep; people's own things stay."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import structlog
from sqlalchemy import select

from core.admin.control import retry_one
from core.db.models import Meeting, SyncType
from core.drift_report import run_drift
from core.engine.loops.drift_sweep import sweep_once
from core.engine.running import runner
from core.engine.running.state import SyncKey
from core.group_joining import sync_after_group_change
from core.metrics import REGISTRY
from core.syncers.calendar_plan import event_id_for
from tests.e2e.conftest import System
from tests.waiting import wait_for

STRANGER = "777000000000000009"
PERSONS_EVENT = {
    "id": "personal0001",
    "summary": "Coffee",
    "start": {"dateTime": "2030-01-01T10:00:00+00:00"},
    "end": {"dateTime": "2030-01-01T11:00:00+00:00"},
}


async def _drifted_group(system: System) -> tuple[Any, Any, Any, list[str]]:
    """A converged group, then: ann's text overwrite deleted through the API, the first
    event renamed with bob removed, the second event deleted by a person."""
    world = system.world
    group = await world.add_group(meetings=2)
    ann, bob = await world.add_user(), await world.add_user()
    await world.join(ann, group)
    await world.join(bob, group)
    text, calendar = group.discord_text_channel_id, group.calendar_id
    assert text is not None
    assert calendar is not None
    world.sandbox.discord.set_foreign_overwrite(text, STRANGER, 1, allow=1024)
    world.sandbox.calendar.store.insert(calendar, PERSONS_EVENT, "person@example.org")
    await sync_after_group_change(group.id)
    # (a loaded machine may answer one call late: its retry converges the group)
    await wait_for(system.all_converged, timeout=60, message="the group to converge")
    async with world.sessions() as session:
        meetings = (await session.scalars(
            select(Meeting.id).where(Meeting.group_id == group.id).order_by(Meeting.id))).all()
    events = [event_id_for(m) for m in meetings]
    await _break(system, group, ann, bob, events)
    return group, ann, bob, events


async def _break(system: System, group: Any, ann: Any, bob: Any, events: list[str]) -> None:
    sandbox = system.sandbox
    async with httpx.AsyncClient(base_url=sandbox.discord_base_url) as http:
        response = await http.delete(
            f"/channels/{group.discord_text_channel_id}/permissions/{ann.discord_user_id}",
            headers={"Authorization": f"Bot {sandbox.discord_bot_token}"},
        )
    assert response.status_code == 204
    sandbox.calendar.edit_event_as_person(
        group.calendar_id, events[0],
        {"summary": "Renamed by a person", "attendees": [{"email": ann.email}]},
    )
    sandbox.calendar.delete_event_as_person(group.calendar_id, events[1])


def _assert_repaired(system: System, group: Any, ann: Any, bob: Any, events: list[str]) -> None:
    world = system.world
    assert world.member_overwrites(group.discord_text_channel_id) == {
        ann.discord_user_id, bob.discord_user_id, STRANGER}
    first = world.sandbox.calendar.get_event(group.calendar_id, events[0])
    second = world.sandbox.calendar.get_event(group.calendar_id, events[1])
    assert first["summary"] != "Renamed by a person"
    assert {a["email"] for a in first["attendees"]} == {ann.email, bob.email}
    assert second["status"] == "confirmed"
    _assert_peoples_things_untouched(system, group)


def _assert_peoples_things_untouched(system: System, group: Any) -> None:
    overwrites = system.sandbox.discord.overwrites(group.discord_text_channel_id)
    assert int(overwrites[STRANGER]["allow"]) == 1024
    mine = system.sandbox.calendar.get_event(group.calendar_id, PERSONS_EVENT["id"])
    assert (mine["summary"], mine["status"]) == ("Coffee", "confirmed")


def _repairs(logs: list[dict[str, Any]], group_id: int) -> set[tuple[str, str, str]]:
    return {(e["service"], e["found"], e["done"]) for e in logs
            if e["event"] == "drift_repaired" and e["group_id"] == group_id}


def _repaired_count() -> float:
    return sum(
        REGISTRY.get_sample_value("groupsync_drift_repaired_total", {"service": s, "done": d})
        or 0.0
        for s, d in {("discord", "restored"), ("calendar", "restored")}
    )


EXPECTED = {
    ("discord", "overwrite of ours missing", "restored"),
    ("calendar", "event altered: summary, attendees", "restored"),
    ("calendar", "event deleted by a person", "restored"),
}


async def test_dry_run_reports_the_drift_and_changes_nothing(system: System) -> None:
    group, ann, _bob, events = await _drifted_group(system)
    system.world.clear_calls()
    out = io.StringIO()

    code = await run_drift(system.world.settings, [group.id], True, True, out)

    reported = {(i["service"], i["found"], i["done"]) for i in json.loads(out.getvalue())}
    assert code == 0
    assert reported == {(s, f, f"would be {d}") for s, f, d in EXPECTED}
    assert all(route.startswith("GET") for route in system.world.calls())
    assert ann.discord_user_id not in system.world.member_overwrites(
        group.discord_text_channel_id)
    assert system.sandbox.calendar.get_event(group.calendar_id, events[1])["status"] == (
        "cancelled")


async def test_retry_of_each_key_repairs_and_logs_each_repair(system: System) -> None:
    group, ann, bob, events = await _drifted_group(system)

    with structlog.testing.capture_logs() as logs:
        for sync_type in (SyncType.DISCORD, SyncType.CALENDAR):
            # What `main.py retry <type> <group>` does to the row, then the run it wakes.
            await retry_one(system.world.sessions, sync_type, group.id,
                            system.runtime.clock.now())
            await runner.run_key(system.runtime, SyncKey(sync_type, group.id), reason="retry")

    assert _repairs(logs, group.id) == EXPECTED
    _assert_repaired(system, group, ann, bob, events)


async def test_the_drift_sweep_repairs_and_logs_each_repair(system: System) -> None:
    group, ann, bob, events = await _drifted_group(system)

    before = _repaired_count()
    with structlog.testing.capture_logs() as logs:
        swept = await sweep_once(system.runtime)

    assert swept == 1
    assert _repairs(logs, group.id) == EXPECTED
    assert _repaired_count() - before == 3  # the Prometheus counter /metrics exposes
    _assert_repaired(system, group, ann, bob, events)
    out = io.StringIO()
    await run_drift(system.world.settings, [group.id], True, True, out)
    assert json.loads(out.getvalue()) == []  # nothing left to report
