"""The Calendar adapter through google-api-python-client against the fake Calendar."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from core.clients.calendar_adapter import CalendarAdapter
from core.clients.limits import ClientLimits
from core.errors import CircuitOpenError, NeedsAttentionError, RateLimitedError, TransientError
from core.lanes import Lane
from core.sandbox import Sandbox
from tests.clients.conftest import CALENDAR, MakeCalendar, routes

INTER = Lane.INTERACTIVE
EVENTS = "/calendars/{calendar_id}/events"
TAG = ("groupsync", "meeting-7")


def meeting(event_id: str = "gsmeeting0007", emails: tuple[str, ...] = ("a@example.org",)
            ) -> dict[str, Any]:
    return {
        "id": event_id, "summary": "Group 1 weekly",
        "start": {"dateTime": "2031-01-06T17:00:00Z"}, "end": {"dateTime": "2031-01-06T18:00:00Z"},
        "attendees": [{"email": e} for e in emails],
        "extendedProperties": {"private": {TAG[0]: TAG[1]}},
    }


async def test_insert_get_update_list_delete(calendar_client: CalendarAdapter,
                                             sandbox: Sandbox) -> None:
    created = await calendar_client.insert_event(CALENDAR, meeting(), "all", INTER)
    body = {**meeting(), "attendees": [{"email": "b@example.org"}]}

    updated = await calendar_client.update_event(
        CALENDAR, created["id"], body, created["etag"], "all", INTER)
    listed = await calendar_client.list_events(CALENDAR, TAG, INTER)
    await calendar_client.delete_event(CALENDAR, created["id"], "all", INTER)

    assert updated is not None
    assert [a["email"] for a in updated["attendees"]] == ["b@example.org"]
    assert [e["id"] for e in listed] == ["gsmeeting0007"]
    assert (await calendar_client.get_event(CALENDAR, "gsmeeting0007", INTER) or {})["status"] == (
        "cancelled")
    assert sandbox.calendar.events(CALENDAR) == []


async def test_update_with_if_match_costs_one_unit(calendar_client: CalendarAdapter,
                                                   sandbox: Sandbox) -> None:
    created = await calendar_client.insert_event(CALENDAR, meeting(), "all", INTER)

    await calendar_client.update_event(CALENDAR, created["id"], meeting(), created["etag"],
                                       "all", INTER)

    update = [r for r in sandbox.calendar.request_log if r.method == "PUT"]
    assert [(r.status, r.quota_units) for r in update] == [(200, 1)]


async def test_a_retried_insert_returns_the_existing_event(calendar_client: CalendarAdapter,
                                                           sandbox: Sandbox) -> None:
    first = await calendar_client.insert_event(CALENDAR, meeting(), "all", INTER)
    second = await calendar_client.insert_event(CALENDAR, meeting(), "all", INTER)

    assert second["id"] == first["id"]
    assert len(sandbox.calendar.events(CALENDAR)) == 1
    assert routes(sandbox.calendar, f"POST {EVENTS}") == [200, 409]


async def test_deleting_twice_or_a_missing_event_is_fine(calendar_client: CalendarAdapter) -> None:
    await calendar_client.insert_event(CALENDAR, meeting(), "all", INTER)

    await calendar_client.delete_event(CALENDAR, "gsmeeting0007", "all", INTER)
    await calendar_client.delete_event(CALENDAR, "gsmeeting0007", "all", INTER)  # 410
    await calendar_client.delete_event(CALENDAR, "gsneverexisted", "all", INTER)  # 404

    assert await calendar_client.get_event(CALENDAR, "gsneverexisted", INTER) is None


async def test_a_stale_etag_returns_none(calendar_client: CalendarAdapter,
                                         sandbox: Sandbox) -> None:
    created = await calendar_client.insert_event(CALENDAR, meeting(), "all", INTER)
    sandbox.calendar.edit_event_as_person(CALENDAR, created["id"], {"summary": "moved"})

    result = await calendar_client.update_event(
        CALENDAR, created["id"], meeting(), created["etag"], "all", INTER)

    assert result is None
    assert sandbox.calendar.get_event(CALENDAR, created["id"])["summary"] == "moved"


async def test_a_missing_calendar_needs_attention_with_googles_message(
        calendar_client: CalendarAdapter) -> None:
    with pytest.raises(NeedsAttentionError) as caught:
        await calendar_client.insert_event("nobody@example.org", meeting(), "all", INTER)

    assert (caught.value.status, caught.value.code) == (404, "notFound")
    assert str(caught.value) == "Not Found"


async def test_revoked_credentials_need_attention(calendar_client: CalendarAdapter,
                                                  sandbox: Sandbox) -> None:
    sandbox.calendar.inject("revoked_token")

    with pytest.raises(NeedsAttentionError) as caught:
        await calendar_client.list_events(CALENDAR, TAG, INTER)

    assert caught.value.status == 401


async def test_quota_exceeded_needs_attention(calendar_client: CalendarAdapter,
                                              sandbox: Sandbox) -> None:
    sandbox.calendar.inject("quota_exceeded", count=1, route=f"GET {EVENTS}")

    with pytest.raises(NeedsAttentionError) as caught:
        await calendar_client.list_events(CALENDAR, TAG, INTER)

    assert (caught.value.status, caught.value.code) == (403, "quotaExceeded")


async def test_one_5xx_is_retried_inside_the_call(calendar_client: CalendarAdapter,
                                                  sandbox: Sandbox) -> None:
    sandbox.calendar.inject("5xx", count=1, status=503, route=f"GET {EVENTS}")

    assert await calendar_client.list_events(CALENDAR, TAG, INTER) == []
    assert routes(sandbox.calendar, f"GET {EVENTS}") == [503, 200]


async def test_persistent_5xx_is_transient_after_two_short_retries(
        calendar_client: CalendarAdapter, sandbox: Sandbox) -> None:
    sandbox.calendar.inject("5xx", status=500, route=f"GET {EVENTS}")

    with pytest.raises(TransientError) as caught:
        await calendar_client.list_events(CALENDAR, TAG, INTER)

    assert type(caught.value) is TransientError
    assert routes(sandbox.calendar, f"GET {EVENTS}") == [500, 500, 500]


async def test_a_429_is_rate_limited_with_the_servers_retry_after(
        calendar_client: CalendarAdapter, sandbox: Sandbox) -> None:
    sandbox.calendar.inject("429", count=1, retry_after=300.0, route=f"GET {EVENTS}")  # 3 s

    with pytest.raises(RateLimitedError) as caught:
        await calendar_client.list_events(CALENDAR, TAG, INTER)

    assert caught.value.retry_after == pytest.approx(3.0)
    assert routes(sandbox.calendar, f"GET {EVENTS}") == [429]


async def test_a_403_rate_limit_exceeded_is_rate_limited(calendar_client: CalendarAdapter,
                                                         sandbox: Sandbox) -> None:
    sandbox.calendar.inject("429", count=1, status=403, route=f"GET {EVENTS}")

    with pytest.raises(RateLimitedError):
        await calendar_client.list_events(CALENDAR, TAG, INTER)


async def test_calls_run_off_the_event_loop(make_calendar: MakeCalendar,
                                            sandbox: Sandbox) -> None:
    adapter = await make_calendar(ClientLimits(client_call_timeout_seconds=1000))
    sandbox.calendar.inject("latency", count=1, latency=50.0, route=f"GET {EVENTS}")  # 0.5 s
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    start = time.monotonic()
    await adapter.list_events(CALENDAR, TAG, INTER)
    took = time.monotonic() - start
    beat.cancel()

    assert took >= 0.5
    assert ticks >= 25  # the loop kept ticking while the worker thread waited


async def test_list_follows_every_page(calendar_client: CalendarAdapter,
                                       sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.clients.calendar_adapter.PAGE_SIZE", 2)
    for n in range(5):
        await calendar_client.insert_event(CALENDAR, meeting(f"gsmeeting000{n}"), "none", INTER)

    listed = await calendar_client.list_events(CALENDAR, TAG, INTER)

    assert sorted(e["id"] for e in listed) == [f"gsmeeting000{n}" for n in range(5)]
    assert routes(sandbox.calendar, f"GET {EVENTS}") == [200, 200, 200]


async def test_an_outage_opens_the_calendar_circuit(calendar_client: CalendarAdapter,
                                                    sandbox: Sandbox) -> None:
    await calendar_client.list_events(CALENDAR, TAG, INTER)
    sandbox.calendar.inject("outage")
    for _ in range(5):
        with pytest.raises(TransientError) as failed:
            await calendar_client.list_events(CALENDAR, TAG, INTER)
        assert type(failed.value) is TransientError

    with pytest.raises(CircuitOpenError) as refused:
        await calendar_client.list_events(CALENDAR, TAG, INTER)

    assert refused.value.retry_after is not None
    assert calendar_client.status().breaker_state == "open"
