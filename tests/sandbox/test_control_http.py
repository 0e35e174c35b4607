"""The control API over HTTP (JSON in, JSON out) on every port of the sandbox."""

from __future__ import annotations

from typing import Any

import aiohttp
import discord
import pytest

from core.sandbox import Sandbox
from tests.sandbox.conftest import CALENDAR, Seeded, event_body, run


async def control(http: aiohttp.ClientSession, base: str, call: str,
                  **kwargs: Any) -> Any:
    async with http.post(f"{base}/{call}", json=kwargs) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["result"]


async def test_seed_fault_and_read_state_over_http(sb: Sandbox, bot: discord.Client) -> None:
    async with aiohttp.ClientSession() as http:
        base = sb.control_url
        await control(http, base, "discord/add_guild", guild_id="5000000000000000001")
        await control(http, base, "discord/add_channel", channel_id="5000000000000000002",
                      guild_id="5000000000000000001", name="made-over-http")
        fault = await control(http, base, "discord/inject", kind="5xx", status=503, count=1)
        assert fault["kind"] == "5xx"
        with pytest.raises(discord.DiscordServerError):
            await bot.fetch_channel(5000000000000000002)
        channel = await bot.fetch_channel(5000000000000000002)
        assert channel.name == "made-over-http"  # type: ignore[union-attr]
        counts = await control(http, base, "discord/counts")
        assert {"route": "GET /channels/{channel_id}", "status": 503, "count": 1} in counts
        log = await control(http, base, "discord/request_log")
        assert log[-1]["path"] == "/channels/5000000000000000002"


async def test_calendar_state_over_http(sb: Sandbox, calendar: Any) -> None:
    await run(calendar.events().insert(calendarId=CALENDAR, body=event_body(
        "ctrl00001", attendees=[{"email": "a@x.org"}])))
    async with aiohttp.ClientSession() as http:
        base = sb.control_url
        await control(http, base, "calendar/set_attendee_response", calendar_id=CALENDAR,
                      event_id="ctrl00001", email="a@x.org", response="accepted")
        events = await control(http, base, "calendar/events", calendar_id=CALENDAR)
        assert events[0]["attendees"][0]["responseStatus"] == "accepted"
        quota = await control(http, base, "calendar/quota")
        assert quota["projects"] == {"sandbox-project": 1}


async def test_outage_is_cleared_through_the_other_port(sb: Sandbox, bot: discord.Client,
                                                        ids: Seeded) -> None:
    sb.discord.inject("outage")
    calendar_port_control = sb.urls()["calendar_control_url"]
    async with aiohttp.ClientSession() as http:
        assert (await control(http, calendar_port_control, "discord/active_faults"))[0][
            "kind"] == "outage"
        await control(http, calendar_port_control, "discord/clear_faults")
    assert (await bot.fetch_channel(ids.text)).id == ids.text


async def test_unknown_control_call_is_404_and_bad_arguments_400(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sb.control_url}/discord/state") as response:
            assert response.status == 404
        async with http.post(f"{sb.control_url}/discord/inject", json={"kind": "meteor"}) as r:
            assert r.status == 400
        async with http.get(f"{sb.control_url}/urls") as response:
            assert (await response.json())["discord_base_url"] == sb.discord_base_url
