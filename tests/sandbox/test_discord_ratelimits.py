"""Discord buckets, the global limit and the invalid-request ban, against discord.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import aiohttp
import discord
import pytest

from core.sandbox import DiscordLimits, RouteLimit, Sandbox, SandboxLimits
from tests.sandbox.conftest import Seeded, bot_client, seeded_sandbox
from tests.waiting import wait_for

Point = Callable[[Sandbox], None]
CHANNEL_ROUTE = "GET /channels/{channel_id}"


def limits(**discord_fields: object) -> SandboxLimits:
    return SandboxLimits(discord=replace(DiscordLimits(), **discord_fields))  # type: ignore[arg-type]


def two_per_second() -> SandboxLimits:
    routes = {CHANNEL_ROUTE: RouteLimit("channel", 2, 1.0)}
    return limits(routes=routes)


async def test_route_429_has_discord_headers_and_body(ids: Seeded) -> None:
    async with seeded_sandbox(two_per_second(), time_scale=0.5) as sb:
        headers = {"Authorization": f"Bot {sb.discord_bot_token}"}
        url = f"{sb.discord_base_url}/channels/{ids.text}"
        async with aiohttp.ClientSession(headers=headers) as http:
            remaining = []
            for _ in range(2):
                async with http.get(url) as ok:
                    remaining.append(ok.headers["X-RateLimit-Remaining"])
                    bucket = ok.headers["X-RateLimit-Bucket"]
                    assert float(ok.headers["X-RateLimit-Reset-After"]) <= 0.5
                    assert float(ok.headers["X-RateLimit-Reset"]) > time.time()
            async with http.get(url) as limited:
                body = await limited.json(content_type="application/json")
                assert limited.status == 429
                assert limited.headers["Via"] == "1.1 google"
                assert limited.headers["X-RateLimit-Scope"] == "user"
                assert limited.headers["X-RateLimit-Bucket"] == bucket
                assert limited.headers["Retry-After"] == "1"
                assert body["global"] is False
                assert 0 < body["retry_after"] <= 0.5
                assert body["message"]
            async with http.get(f"{sb.discord_base_url}/channels/{ids.voice}") as other_major:
                assert other_major.status == 200
        assert remaining == ["1", "0"]


async def test_discord_py_waits_out_a_429_and_succeeds(ids: Seeded, point_discord: Point) -> None:
    async with seeded_sandbox(two_per_second(), time_scale=0.3) as sb:
        point_discord(sb)
        async with bot_client(sb) as first, bot_client(sb) as second:
            # discord.py holds the caller until an exhausted bucket resets, so run it aside.
            exhaust = asyncio.gather(first.fetch_channel(ids.text), first.fetch_channel(ids.text))
            await wait_for(lambda: sb.discord.counts()[(CHANNEL_ROUTE, 200)] == 2, timeout=5,
                           interval=0.002, message="the first client's two calls answered")
            started = time.monotonic()
            channel = await second.fetch_channel(ids.text)  # unaware of the exhausted bucket
            waited = time.monotonic() - started
            await exhaust
        assert channel.id == ids.text
        assert sb.discord.counts()[(CHANNEL_ROUTE, 429)] == 1
        assert sb.discord.counts()[(CHANNEL_ROUTE, 200)] == 3
        assert waited >= 0.2  # retry_after was just under 0.3 s


async def test_discord_py_pre_empts_an_exhausted_bucket(ids: Seeded, point_discord: Point) -> None:
    async with seeded_sandbox(two_per_second(), time_scale=0.3) as sb:
        point_discord(sb)
        async with bot_client(sb) as client:
            for _ in range(3):
                await client.fetch_channel(ids.text)
        assert sb.discord.counts()[(CHANNEL_ROUTE, 200)] == 3
        assert sb.discord.counts()[(CHANNEL_ROUTE, 429)] == 0


async def test_global_429_blocks_other_routes(ids: Seeded, point_discord: Point) -> None:
    async with seeded_sandbox(limits(global_limit=2), time_scale=0.5) as sb:
        point_discord(sb)
        async with bot_client(sb) as client:
            await asyncio.sleep(0.55)  # let login's two requests leave the global window
            burst = asyncio.gather(client.fetch_channel(ids.text), client.fetch_channel(ids.voice),
                                   client.fetch_guild(ids.guild))
            await wait_for(lambda: any(r.status == 429 for r in sb.discord.request_log), timeout=5,
                           interval=0.002, message="a 429")
            limited = next(r for r in sb.discord.request_log if r.status == 429)
            user = await client.fetch_user(ids.bob)  # another route, sent after the 429
            await burst
        # The user request may leave before discord.py has read the 429 (the sandbox logs it
        # first); then the sandbox refuses it too. Either way it only succeeds after the wait.
        served = next(r for r in sb.discord.request_log
                      if r.route == "GET /users/{user_id}" and r.status == 200)
        assert user.id == ids.bob
        assert served.time - limited.time >= 0.3  # waited for the global retry_after (~0.5 s)


async def test_invalid_requests_trigger_cloudflare_ban(ids: Seeded, point_discord: Point) -> None:
    ban = limits(invalid_limit=5)
    async with seeded_sandbox(ban, time_scale=0.001) as sb:  # 10 min -> 0.6 s
        point_discord(sb)
        async with bot_client(sb) as client:
            for _ in range(5):
                with pytest.raises(discord.Forbidden):
                    await client.fetch_channel(ids.hidden)
            with pytest.raises(discord.HTTPException) as banned:
                await client.fetch_channel(ids.text)
            assert (banned.value.status, banned.value.code) == (429, 0)
            assert "Via" not in banned.value.response.headers
            assert sb.discord.request_log[-1].faults == ["cloudflare_ban"]
            await asyncio.sleep(0.7)  # the scaled 10-minute window slides past
            assert (await client.fetch_channel(ids.text)).id == ids.text
        assert sb.discord.invalid_requests() == 0


async def test_injected_sub_limit_429_is_retried(sb: Sandbox, bot: discord.Client,
                                                 ids: Seeded) -> None:
    sb.discord.inject("429", count=1, route=CHANNEL_ROUTE, retry_after=5)  # 0.05 s scaled
    channel = await bot.fetch_channel(ids.text)
    assert channel.id == ids.text
    assert sb.discord.counts()[(CHANNEL_ROUTE, 429)] == 1
    assert sb.discord.counts()[(CHANNEL_ROUTE, 200)] == 1
