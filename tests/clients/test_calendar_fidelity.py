"""The Calendar adapter reads errors as Google words them: quota refusals in both
envelopes are rate limits, and a calendar shared read-only or not shared needs attention
with Google's own message (never read as "the event is gone")."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from core.clients.calendar_adapter import CalendarAdapter
from core.errors import NeedsAttentionError, RateLimitedError
from core.lanes import Lane
from core.metrics import REGISTRY
from core.sandbox import Sandbox
from tests.clients.conftest import CALENDAR
from tests.sandbox.conftest import run

INTER = Lane.INTERACTIVE
EVENTS = "/calendars/{calendar_id}/events"
TAG = ("groupsync", "meeting-7")


def rate_limited_responses() -> float:
    value = REGISTRY.get_sample_value("groupsync_rate_limited_responses_total",
                                      {"service": "calendar"})
    return value or 0.0


def meeting(event_id: str = "gsmeeting0007") -> dict[str, Any]:
    return {
        "id": event_id, "summary": "Group 1 weekly",
        "start": {"dateTime": "2031-01-06T17:00:00Z"}, "end": {"dateTime": "2031-01-06T18:00:00Z"},
        "attendees": [{"email": "a@example.org"}],
        "extendedProperties": {"private": {TAG[0]: TAG[1]}},
    }


@pytest.mark.parametrize("envelope", ["errors", "details", "both"])
async def test_a_quota_403_in_either_envelope_is_a_rate_limit_that_pauses_the_lane(
    calendar_client: CalendarAdapter, sandbox: Sandbox, envelope: str
) -> None:
    sandbox.calendar.set_quota_envelope(envelope)
    sandbox.calendar.inject("429", count=1, status=403, retry_after=300.0,  # 3 s scaled
                            route=f"GET {EVENTS}")

    before = rate_limited_responses()
    with pytest.raises(RateLimitedError) as caught:
        await calendar_client.list_events(CALENDAR, TAG, INTER)

    assert caught.value.retry_after == pytest.approx(3.0)
    status = calendar_client.status()
    assert status.rate_limited_for["background"] > 2.0  # background is throttled first
    # The breaker counts the quota refusal, yet it never opens the circuit.
    assert (status.breaker_state, status.consecutive_failures, status.rate_limits) == (
        "closed", 0, 1)
    assert rate_limited_responses() == before + 1  # and Prometheus counts it as one


async def test_googles_newer_envelope_hides_the_reason_from_error_details(
    sandbox: Sandbox,
) -> None:
    """Why the adapter reads the body: error_details shows details[] first (Help)."""
    from google.oauth2.credentials import Credentials

    sandbox.calendar.set_quota_envelope("both")
    sandbox.calendar.inject("429", count=1, status=403, route=f"GET {EVENTS}")
    service = build("calendar", "v3", credentials=Credentials(token=sandbox.calendar_token),
                    static_discovery=True,
                    client_options={"api_endpoint": sandbox.calendar_endpoint})
    try:
        with pytest.raises(HttpError) as caught:
            await run(service.events().list(calendarId=CALENDAR))
    finally:
        service.close()
    details = caught.value.error_details
    assert isinstance(details, list)
    assert details[0]["@type"].endswith("google.rpc.Help")
    assert "reason" not in details[0]
    assert details[1]["reason"] == "RATE_LIMIT_EXCEEDED"


async def test_a_calendar_shared_read_only_needs_attention_with_googles_words(
    calendar_client: CalendarAdapter, sandbox: Sandbox
) -> None:
    sandbox.calendar.share_calendar(CALENDAR, "reader")

    with pytest.raises(NeedsAttentionError) as caught:
        await calendar_client.insert_event(CALENDAR, meeting(), "all", INTER)

    assert (caught.value.status, caught.value.code) == (403, "requiredAccessLevel")
    assert str(caught.value) == "You need to have writer access to this calendar."


async def test_an_unshared_calendar_is_not_read_as_a_deleted_event(
    calendar_client: CalendarAdapter, sandbox: Sandbox
) -> None:
    await calendar_client.insert_event(CALENDAR, meeting(), "all", INTER)
    sandbox.calendar.share_calendar(CALENDAR, "none")

    with pytest.raises(NeedsAttentionError) as deleting:
        await calendar_client.delete_event(CALENDAR, "gsmeeting0007", "all", INTER)
    with pytest.raises(NeedsAttentionError) as reading:
        await calendar_client.get_event(CALENDAR, "gsmeeting0007", INTER)

    for caught in (deleting, reading):
        assert caught.value.status == 404
        assert "not shared" in str(caught.value)
        assert "Not Found" in str(caught.value)
    assert [e["status"] for e in sandbox.calendar.events(CALENDAR)] == ["confirmed"]


async def test_a_missing_event_on_a_shared_calendar_is_still_none(
    calendar_client: CalendarAdapter,
) -> None:
    assert await calendar_client.get_event(CALENDAR, "gsnothere0001", INTER) is None
    await calendar_client.delete_event(CALENDAR, "gsnothere0001", "all", INTER)
