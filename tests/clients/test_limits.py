"""The client limits come from the documented ones, a small margin under them in every window."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.clients.discord_adapter import DiscordAdapter
from core.clients.limits import ClientLimits, window_rate
from core.clients.ratelimit import TokenBucket, take_all
from core.clock import TimeScale
from core.lanes import Lane
from core.sandbox import start_sandbox
from core.sandbox.options import DiscordLimits, SandboxLimits
from tests.clients.conftest import GUILD


@pytest.mark.parametrize(
    ("limit", "period", "burst_fraction", "min_sustained"),
    [
        (50, 1.0, 0.0, 47.0),  # Discord global: 48 per second sustained, burst of one
        (600, 60.0, 0.1, 500.0),  # Calendar per user
        (10_000, 60.0, 0.1, 8500.0),  # Calendar per project
    ],
)
def test_a_window_rate_stays_under_the_limit_in_any_window_and_close_to_it(
    limit: float, period: float, burst_fraction: float, min_sustained: float
) -> None:
    rate = window_rate(limit, period, burst_fraction)

    assert (rate.burst or 0) + rate.limit < limit
    assert rate.limit >= min_sustained


def test_the_default_discord_bucket_never_sends_more_than_49_in_a_sliding_second() -> None:
    rate = ClientLimits().discord("http://127.0.0.1:1", TimeScale(1.0)).resilience.limiter
    bucket = TokenBucket(rate.service_rates[0], 0.0)
    now, sent = 0.0, []
    while len(sent) < 500:  # take tokens as fast as the bucket allows
        wait = take_all([bucket], now)
        if wait == 0.0:
            sent.append(now)
        now += wait + 1e-9  # past the float rounding of the refill
    most = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert 47 <= most <= 49
    assert sent[-1] < 500 / 47


async def test_a_stream_at_discords_documented_limit_meets_no_429() -> None:
    # Discord's limit at a tenth of the speed (5 per second), our defaults scaled alike.
    scale = TimeScale(10.0)
    channels = [f"1000000000000007{n:02d}" for n in range(30)]
    limits = SandboxLimits(discord=DiscordLimits(global_limit=50, global_period=1.0))
    async with start_sandbox(time_scale=scale.factor, limits=limits) as sandbox:
        sandbox.discord.add_guild(GUILD)
        for channel in channels:
            sandbox.discord.add_channel(channel, GUILD, f"c{channel[-2:]}")
        options = ClientLimits().discord(sandbox.discord_base_url, scale)
        adapter = DiscordAdapter(sandbox.discord_bot_token, options, time.monotonic)
        await adapter.start()
        try:
            await asyncio.gather(
                *(adapter.channel_overwrites(c, Lane.INTERACTIVE) for c in channels))
        finally:
            await adapter.close()

    statuses = [r.status for r in sandbox.discord.request_log]
    assert 429 not in statuses
    assert statuses.count(200) >= len(channels)
