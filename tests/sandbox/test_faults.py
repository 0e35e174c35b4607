"""Each fault kind injected and cleared, seen through the real client libraries."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from core.sandbox import Sandbox
from tests.sandbox.conftest import CALENDAR, Seeded, event_body, run

CHANNEL_ROUTE = "GET /channels/{channel_id}"
LIST_ROUTE = "GET /calendars/{calendar_id}/events"


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


# ---- Discord -------------------------------------------------------------------------------
async def test_discord_503_raises_at_once_then_clears(sb: Sandbox, bot: discord.Client,
                                                      ids: Seeded) -> None:
    sb.discord.inject("5xx", status=503, count=1)
    with pytest.raises(discord.DiscordServerError):
        await bot.fetch_channel(ids.text)
    assert (await bot.fetch_channel(ids.text)).id == ids.text


async def test_discord_500_is_retried_by_discord_py(sb: Sandbox, bot: discord.Client,
                                                    ids: Seeded) -> None:
    sb.discord.inject("5xx", count=1, route=CHANNEL_ROUTE)  # discord.py sleeps 1 s, retries
    assert (await bot.fetch_channel(ids.text)).id == ids.text
    assert sb.discord.counts()[(CHANNEL_ROUTE, 500)] == 1
    assert sb.discord.counts()[(CHANNEL_ROUTE, 200)] == 1


async def test_discord_latency(sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    handle = sb.discord.inject("latency", latency=20)  # 0.2 s at time_scale 0.01
    started = time.monotonic()
    await bot.fetch_channel(ids.text)
    assert time.monotonic() - started >= 0.18
    handle.clear()
    assert sb.discord.active_faults() == []


async def test_discord_outage_refuses_connections_until_cleared(
        sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    port = int(sb.discord_base_url.split(":")[2].split("/")[0])
    outage = sb.discord.inject("outage")
    assert await refused(port)
    with pytest.raises(aiohttp.ClientConnectionError):
        await bot.fetch_channel(ids.text)
    outage.clear()
    assert not await refused(port)
    assert (await bot.fetch_channel(ids.text)).id == ids.text


async def test_discord_revoked_token(sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    sb.discord.inject("revoked_token")
    with pytest.raises(discord.HTTPException) as caught:
        await bot.fetch_channel(ids.text)
    assert (caught.value.status, caught.value.code) == (401, 0)
    sb.discord.clear_faults()
    assert (await bot.fetch_channel(ids.text)).id == ids.text


async def test_fault_fraction_hits_some_requests(sb: Sandbox, ids: Seeded) -> None:
    sb.discord.inject("5xx", status=503, fraction=0.5)
    headers = {"Authorization": f"Bot {sb.discord_bot_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for n in range(20):
            async with http.get(f"{sb.discord_base_url}/channels/{ids.text}?n={n}"):
                pass
    failed = sb.discord.counts()[(CHANNEL_ROUTE, 503)]
    assert 0 < failed < 20


# ---- Calendar ------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "status"), [("5xx", None), ("5xx", 503), ("429", None)])
async def test_calendar_transient_errors_are_retried(sb: Sandbox, calendar: Any, kind: str,
                                                     status: int | None) -> None:
    sb.calendar.inject(kind, count=2, status=status)
    sleeps: list[float] = []
    await run(calendar.events().list(calendarId=CALENDAR), num_retries=3, sleeps=sleeps)
    assert len(sleeps) == 2
    assert sb.calendar.counts()[(LIST_ROUTE, 200)] == 1


async def test_calendar_retries_403_rate_limit_exceeded(sb: Sandbox, calendar: Any) -> None:
    sb.calendar.inject("429", status=403, count=1)
    sleeps: list[float] = []
    await run(calendar.events().list(calendarId=CALENDAR), num_retries=2, sleeps=sleeps)
    assert len(sleeps) == 1
    assert sb.calendar.counts()[(LIST_ROUTE, 403)] == 1


async def test_calendar_403_rate_limit_not_retried_unless_asked(sb: Sandbox,
                                                               calendar: Any) -> None:
    sb.calendar.inject("429", status=403, count=1)
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().list(calendarId=CALENDAR))
    assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
    assert caught.value.error_details[0]["domain"] == "usageLimits"


async def test_calendar_does_not_retry_quota_exceeded(sb: Sandbox, calendar: Any) -> None:
    sb.calendar.inject("quota_exceeded", count=1)
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().list(calendarId=CALENDAR), num_retries=3, sleeps=[])
    assert caught.value.status_code == 403
    assert caught.value.error_details[0]["reason"] == "quotaExceeded"
    assert len(sb.calendar.request_log) == 1


async def test_calendar_outage_and_recovery(sb: Sandbox, calendar: Any) -> None:
    outage = sb.calendar.inject("outage")
    with pytest.raises(ConnectionRefusedError):
        await run(calendar.events().list(calendarId=CALENDAR))
    outage.clear()
    assert (await run(calendar.events().list(calendarId=CALENDAR)))["items"] == []


async def test_calendar_latency_on_one_route(sb: Sandbox, calendar: Any) -> None:
    sb.calendar.inject("latency", latency=20, route=LIST_ROUTE, count=1)
    started = time.monotonic()
    await run(calendar.events().list(calendarId=CALENDAR))
    assert time.monotonic() - started >= 0.18


async def test_calendar_revoked_token_with_service_account(sb: Sandbox, tmp_path: Path) -> None:
    key_file = sb.write_service_account_file(tmp_path / "sa.json")
    credentials = service_account.Credentials.from_service_account_file(
        str(key_file), scopes=["https://www.googleapis.com/auth/calendar"])
    service = build("calendar", "v3", credentials=credentials, static_discovery=True,
                    client_options={"api_endpoint": sb.calendar_endpoint})
    try:
        await run(service.events().insert(calendarId=CALENDAR, body=event_body("revoke001")))
        revoked = sb.calendar.inject("revoked_token")
        with pytest.raises(RefreshError, match="invalid_grant"):
            await run(service.events().get(calendarId=CALENDAR, eventId="revoke001"))
        assert sb.calendar.counts()[("GET /calendars/{calendar_id}/events/{event_id}", 401)] == 1
        revoked.clear()
        got = await run(service.events().get(calendarId=CALENDAR, eventId="revoke001"))
        assert got["id"] == "revoke001"
    finally:
        service.close()
    assert sb.calendar.counts()[("POST /token", 200)] == 1  # the first token works again
    assert sb.calendar.counts()[("POST /token", 400)] == 1  # refresh refused while revoked


# ---- applied, answered too late ----------------------------------------------------------------
async def test_discord_late_answer_applies_the_write_before_the_client_gives_up(
        sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    member = discord.Object(ids.alice)
    channel = await bot.fetch_channel(ids.text)
    sb.discord.inject("late_answer", latency=50, count=1)  # 0.5 s at time_scale 0.01
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await bot.http.edit_channel_permissions(channel.id, member.id, "1024", "0", 1)
    assert str(ids.alice) in sb.discord.overwrites(ids.text)  # applied all the same


async def test_calendar_late_answer_applies_the_insert(sb: Sandbox, calendar: Any) -> None:
    sb.calendar.inject("late_answer", latency=50, count=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("late00001")))
    assert [e["id"] for e in sb.calendar.events(CALENDAR)] == ["late00001"]
