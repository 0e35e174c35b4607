"""Breaker and lanes around real calls: outages are bounded, background yields."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.clients.discord_adapter import DiscordAdapter
from core.clients.limits import ClientLimits
from core.errors import CircuitOpenError, NeedsAttentionError, RateLimitedError, TransientError
from core.lanes import Lane
from core.sandbox import DiscordLimits, Sandbox, SandboxLimits, start_sandbox
from tests.clients.conftest import ALICE, GUILD, SCALE, TEXT, MakeDiscord, routes

INTER, BACK = Lane.INTERACTIVE, Lane.BACKGROUND
GET_CHANNEL = "GET /channels/{channel_id}"


async def test_the_breaker_bounds_the_calls_made_during_a_failure_streak(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    await discord_client.channel_overwrites(TEXT, INTER)
    sandbox.discord.inject("5xx", status=503, route=GET_CHANNEL)
    outcomes: list[type[Exception]] = []

    for _ in range(50):
        try:
            await discord_client.channel_overwrites(TEXT, INTER)
        except TransientError as exc:
            outcomes.append(type(exc))

    assert outcomes.count(TransientError) == 5  # the failure threshold
    assert outcomes.count(CircuitOpenError) == 45
    assert routes(sandbox.discord, GET_CHANNEL) == [200] + [503] * 5
    assert discord_client.status().breaker_state == "open"


async def test_an_open_circuit_says_when_it_half_opens(discord_client: DiscordAdapter,
                                                       sandbox: Sandbox) -> None:
    await discord_client.channel_overwrites(TEXT, INTER)
    sandbox.discord.inject("outage")
    for _ in range(5):
        with pytest.raises(TransientError):
            await discord_client.channel_overwrites(TEXT, INTER)

    with pytest.raises(CircuitOpenError) as caught:
        await discord_client.channel_overwrites(TEXT, BACK)

    reset = SCALE.seconds(30.0)
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= reset
    assert discord_client.status().seconds_until_half_open == pytest.approx(
        caught.value.retry_after, abs=0.05)


async def test_after_the_outage_a_half_open_probe_closes_the_circuit(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    await discord_client.channel_overwrites(TEXT, INTER)
    outage = sandbox.discord.inject("outage")
    for _ in range(5):
        with pytest.raises(TransientError):
            await discord_client.channel_overwrites(TEXT, INTER)
    outage.clear()

    with pytest.raises(CircuitOpenError) as caught:
        await discord_client.channel_overwrites(TEXT, INTER)
    await asyncio.sleep(caught.value.retry_after or 0)

    assert await discord_client.channel_overwrites(TEXT, INTER) == {}
    assert discord_client.status().breaker_state == "closed"


async def test_a_failed_probe_reopens_the_circuit(discord_client: DiscordAdapter,
                                                  sandbox: Sandbox) -> None:
    await discord_client.channel_overwrites(TEXT, INTER)
    sandbox.discord.inject("outage")
    for _ in range(5):
        with pytest.raises(TransientError):
            await discord_client.channel_overwrites(TEXT, INTER)
    await asyncio.sleep(SCALE.seconds(30.0))

    with pytest.raises(TransientError) as probe:
        await discord_client.channel_overwrites(TEXT, INTER)

    assert type(probe.value) is TransientError
    assert discord_client.status().breaker_state == "open"


async def test_needs_attention_answers_do_not_trip_the_breaker(
        discord_client: DiscordAdapter) -> None:
    for _ in range(10):
        with pytest.raises(NeedsAttentionError):
            await discord_client.channel_overwrites("199999999999999999", INTER)

    assert discord_client.status().breaker_state == "closed"


async def test_a_background_rate_limit_does_not_delay_interactive_calls(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    sandbox.discord.inject("429", count=1, retry_after=500.0, route=GET_CHANNEL)  # 5 s
    with pytest.raises(RateLimitedError):
        await discord_client.channel_overwrites(TEXT, BACK)
    sent = len(sandbox.discord.request_log)

    start = time.monotonic()
    await discord_client.set_member_overwrite(TEXT, ALICE, 1024, 0, INTER, "join")
    interactive_took = time.monotonic() - start
    with pytest.raises(RateLimitedError) as held:
        await discord_client.set_member_overwrite(TEXT, ALICE, 1024, 0, BACK, "refresh")

    assert interactive_took < 2.5  # well short of the 5 s the background lane waits
    assert held.value.retry_after is not None
    assert held.value.retry_after > 4.0
    assert len(sandbox.discord.request_log) == sent + 1  # the held call was not sent
    assert discord_client.status().rate_limited_for["interactive"] == 0.0


async def test_a_small_call_deadline_turns_a_hang_into_a_transient_error(
        make_discord: MakeDiscord, sandbox: Sandbox) -> None:
    adapter = await make_discord(ClientLimits(client_call_timeout_seconds=100))  # 1 s
    await adapter.channel_overwrites(TEXT, INTER)
    sandbox.discord.inject("latency", count=1, latency=200.0)  # 2 s

    with pytest.raises(TransientError) as caught:
        await adapter.channel_overwrites(TEXT, INTER)

    assert "no answer within" in str(caught.value)


async def test_a_global_429_pauses_the_interactive_lane_too() -> None:
    limits = SandboxLimits(discord=DiscordLimits(global_limit=3, global_period=1000.0))
    async with start_sandbox(time_scale=SCALE.factor, limits=limits) as sandbox:
        sandbox.discord.add_guild(GUILD)
        sandbox.discord.add_channel(TEXT, GUILD, "text")
        options = ClientLimits().discord(sandbox.discord_base_url, SCALE)
        adapter = DiscordAdapter(sandbox.discord_bot_token, options, time.monotonic)
        await adapter.start()
        try:
            await adapter.channel_overwrites(TEXT, BACK)  # login (2 requests) + 1: the quota
            with pytest.raises(RateLimitedError) as hit:
                await adapter.channel_overwrites(TEXT, BACK)
            sent = len(sandbox.discord.request_log)
            with pytest.raises(RateLimitedError) as held:
                await adapter.channel_overwrites(TEXT, INTER)
        finally:
            await adapter.close()

    assert hit.value.is_global
    assert held.value.is_global
    assert len(sandbox.discord.request_log) == sent
    assert hit.value.retry_after is not None
    assert hit.value.retry_after > 5.0


async def test_the_client_side_limit_keeps_a_burst_under_discords_global_limit() -> None:
    # A world 100 times slower than Discord's: 50 per 100 s globally, we allow 40 per 100 s.
    limits = SandboxLimits(discord=DiscordLimits(global_limit=50, global_period=100.0))
    channels = [f"1000000000000005{n:02d}" for n in range(80)]
    async with start_sandbox(time_scale=SCALE.factor, limits=limits) as sandbox:
        sandbox.discord.add_guild(GUILD)
        for channel in channels:
            sandbox.discord.add_channel(channel, GUILD, f"c{channel[-2:]}")
        options = ClientLimits(discord_requests_per_second=0.4).discord(
            sandbox.discord_base_url, SCALE)
        adapter = DiscordAdapter(sandbox.discord_bot_token, options, time.monotonic)
        await adapter.start()
        try:
            await asyncio.gather(*(adapter.channel_overwrites(c, INTER) for c in channels))
        finally:
            await adapter.close()

    assert routes(sandbox.discord, GET_CHANNEL) == [200] * 80  # no 429 along the way
