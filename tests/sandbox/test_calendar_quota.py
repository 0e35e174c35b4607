"""Calendar quota windows per project and per user; patch costs 3 units."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from googleapiclient.errors import HttpError

from core.sandbox import CalendarLimits, SandboxLimits
from tests.sandbox.conftest import CALENDAR, calendar_service, event_body, run, seeded_sandbox


def quota(**fields: int) -> SandboxLimits:
    return SandboxLimits(calendar=replace(CalendarLimits(), **fields))


async def test_units_counted_per_user_and_per_project() -> None:
    async with seeded_sandbox() as sb:
        ann = sb.calendar.issue_token("ann@cohort.org")
        ben = sb.calendar.issue_token("ben@cohort.org")
        for token in (ann, ben):
            service = calendar_service(sb, token)
            await run(service.events().insert(calendarId=CALENDAR, body=event_body()))
            service.close()
        service = calendar_service(sb, ann)
        event_id = sb.calendar.events(CALENDAR)[0]["id"]
        await run(service.events().patch(calendarId=CALENDAR, eventId=event_id,
                                         body={"summary": "moved"}))
        service.close()
        assert sb.calendar.user_units("ann@cohort.org") == 1 + 3
        assert sb.calendar.user_units("ben@cohort.org") == 1
        assert sb.calendar.project_units("sandbox-project") == 5
        assert [r.quota_units for r in sb.calendar.request_log] == [1, 1, 3]


async def test_user_over_quota_gets_403_user_rate_limit_others_do_not() -> None:
    async with seeded_sandbox(quota(user_per_window=3)) as sb:
        ann = calendar_service(sb, sb.calendar.issue_token("ann@cohort.org"))
        ben = calendar_service(sb, sb.calendar.issue_token("ben@cohort.org"))
        for _ in range(3):
            await run(ann.events().list(calendarId=CALENDAR))
        with pytest.raises(HttpError) as caught:
            await run(ann.events().list(calendarId=CALENDAR))
        assert caught.value.status_code == 403
        assert caught.value.error_details[0]["reason"] == "userRateLimitExceeded"
        await run(ben.events().list(calendarId=CALENDAR))
        assert sb.calendar.user_units("ann@cohort.org") == 3
        ann.close()
        ben.close()


async def test_project_over_quota_and_window_slides() -> None:
    limits = quota(project_per_window=4, window=60)
    async with seeded_sandbox(limits, time_scale=0.005) as sb:  # 1 minute -> 0.3 s
        # The window's clock stands still until the test moves it: on a loaded machine
        # three real requests can take longer than the 0.3 s window (a CI run saw the
        # third one admitted because the first had already slid out).
        frozen = [sb.calendar.clock.now()]
        sb.calendar.clock.now = lambda: frozen[0]  # type: ignore[method-assign]
        ann = calendar_service(sb, sb.calendar.issue_token("ann@cohort.org"))
        ben = calendar_service(sb, sb.calendar.issue_token("ben@cohort.org"))
        await run(ann.events().insert(calendarId=CALENDAR, body=event_body("quota0001")))
        await run(ben.events().patch(calendarId=CALENDAR, eventId="quota0001", body={}))
        with pytest.raises(HttpError) as caught:
            await run(ben.events().get(calendarId=CALENDAR, eventId="quota0001"))
        assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
        assert sb.calendar.project_units() == 4
        frozen[0] += 0.35
        await run(ben.events().get(calendarId=CALENDAR, eventId="quota0001"))
        assert sb.calendar.project_units() == 1
        ann.close()
        ben.close()


async def test_over_quota_can_answer_429_and_client_retries_it() -> None:
    async with seeded_sandbox(quota(user_per_window=1), time_scale=0.005) as sb:  # 0.3 s window
        sb.calendar.set_over_quota_status(429)
        frozen = [sb.calendar.clock.now()]  # as above: the window moves only when told
        sb.calendar.clock.now = lambda: frozen[0]  # type: ignore[method-assign]
        service = calendar_service(sb)
        await run(service.events().list(calendarId=CALENDAR))
        with pytest.raises(HttpError) as caught:
            await run(service.events().list(calendarId=CALENDAR))
        assert caught.value.status_code == 429
        assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
        request = service.events().list(calendarId=CALENDAR)

        def backoff(_seconds: float) -> None:  # stands in for the client's own backoff sleep
            frozen[0] += 0.35

        request._sleep = backoff
        await asyncio.to_thread(request.execute, num_retries=2)
        service.close()
        assert sb.calendar.counts()[("GET /calendars/{calendar_id}/events", 429)] == 2
