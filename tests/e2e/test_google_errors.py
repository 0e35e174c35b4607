"""Quota refusals as Google sends them (errors[].reason or details[] ErrorInfo) delay the
retry to the server's Retry-After, like a 429, and the sync then converges."""

from __future__ import annotations

import pytest
import structlog

from core.db.models import SyncType
from core.group_joining import sync_after_group_change
from tests.e2e.conftest import System
from tests.waiting import wait_for
from tests.world import SCALE

NOMINAL_RETRY_AFTER = 60.0
INSERT = "POST /calendars/{calendar_id}/events"


@pytest.mark.parametrize("envelope", ["errors", "details"])
async def test_a_quota_403_in_either_envelope_is_retried_after_retry_after(
    system: System, envelope: str
) -> None:
    world, calendar = system.world, system.sandbox.calendar
    group, ann = await world.group_with_member(meetings=1)
    calendar.set_quota_envelope(envelope)
    calendar.inject("429", count=1, status=403, retry_after=NOMINAL_RETRY_AFTER, route=INSERT)

    with structlog.testing.capture_logs() as logs:
        await sync_after_group_change(group.id)
        await wait_for(system.all_converged, message="calendar to converge after the 403")

    (failure,) = [e for e in logs
                  if e["event"] == "sync_failed" and e["sync_type"] == SyncType.CALENDAR]
    assert failure["error_kind"] == "rate_limited"
    assert failure["delay"] >= NOMINAL_RETRY_AFTER * SCALE * 0.9
    assert list(world.attendees(group).values()) == [{ann.email}]
    (calendar_status,) = [s for s in system.runtime.client_board.statuses()
                          if s.service == "calendar"]
    assert calendar_status.consecutive_failures == 0  # a rate limit is not an outage
