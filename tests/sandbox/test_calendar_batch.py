"""The batch endpoint, through googleapiclient's BatchHttpRequest."""

from __future__ import annotations

import asyncio
from typing import Any

from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from core.sandbox import Sandbox
from tests.sandbox.conftest import CALENDAR, event_body, run


def collect(results: dict[str, Any]) -> Any:
    def callback(request_id: str, response: Any, exception: HttpError | None) -> None:
        results[request_id] = exception if exception is not None else response

    return callback


async def test_batch_parts_are_separate_requests_in_order(sb: Sandbox, calendar: Any) -> None:
    await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("batch0000")))
    results: dict[str, Any] = {}
    batch = BatchHttpRequest(callback=collect(results), batch_uri=sb.calendar_batch_url)
    batch.add(calendar.events().insert(calendarId=CALENDAR, body=event_body("batch0001")),
              request_id="new")
    batch.add(calendar.events().insert(calendarId=CALENDAR, body=event_body("batch0000")),
              request_id="dup")
    batch.add(calendar.events().patch(calendarId=CALENDAR, eventId="batch0000",
                                      body={"summary": "patched"}, sendUpdates="none"),
              request_id="patch")
    await asyncio.to_thread(batch.execute)
    assert results["new"]["id"] == "batch0001"
    assert isinstance(results["dup"], HttpError)
    assert results["dup"].status_code == 409
    assert results["patch"]["summary"] == "patched"
    parts = [r for r in sb.calendar.request_log if r.batch]
    assert [(r.method, r.status) for r in parts] == [("POST", 200), ("POST", 409), ("PATCH", 200)]
    assert [r.quota_units for r in parts] == [1, 1, 3]
    assert sb.calendar.counts()[("POST /batch/calendar/v3", 200)] == 1


async def test_batch_part_faults_do_not_fail_the_batch(sb: Sandbox, calendar: Any) -> None:
    sb.calendar.inject("429", status=403, count=1)
    results: dict[str, Any] = {}
    batch = BatchHttpRequest(callback=collect(results), batch_uri=sb.calendar_batch_url)
    for n in range(2):
        batch.add(calendar.events().list(calendarId=CALENDAR), request_id=str(n))
    await asyncio.to_thread(batch.execute)
    assert isinstance(results["0"], HttpError)
    assert results["0"].error_details[0]["reason"] == "rateLimitExceeded"
    assert results["1"]["items"] == []
