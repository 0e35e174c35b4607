"""The client limits come from the documented ones, a small margin under them in every window."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.clients.discord_adapter import DiscordAdapter
from core.clients.limits import ClientLimits, window_rate
from core.clients.ratelimit import SlidingWindow, take_all
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


@pytest.mark.parametrize("latency", [0.0, 0.004, 0.05])
def test_the_default_discord_window_lets_no_second_of_discords_see_more_than_49(
    latency: float,
) -> None:
    limiter = ClientLimits().discord("http://127.0.0.1:1", TimeScale(1.0)).resilience.limiter
    (window,) = [SlidingWindow(w, 0.0) for w in limiter.service_windows]
    now, stamps, ends = 0.0, [], []
    while len(stamps) < 500:  # calls as fast as the window allows, each answered later
        while ends and ends[0] <= now:
            window.end(ends.pop(0))
        wait = take_all([window], now)
        if wait == 0.0:
            # Worst case for us: Discord stamps the call as late as it can (its answer),
            # except every 49th, stamped as early as it can (when it left).
            stamps.append(now if len(stamps) % 49 == 0 else now + latency)
            ends.append(now + latency)
        now = min([now + wait + 1e-9, *ends]) if wait else now

    stamps.sort()
    most = max(sum(1 for t in stamps if start <= t < start + 1.0) for start in stamps)
    assert most <= 49
    assert 500 / stamps[-1] >= 47 / (1 + latency)  # close to the limit all the same


def test_a_whole_change_goes_at_once() -> None:
    limiter = ClientLimits().discord("http://127.0.0.1:1", TimeScale(1.0)).resilience.limiter
    (window,) = [SlidingWindow(w, 0.0) for w in limiter.service_windows]

    assert [take_all([window], 0.0) for _ in range(49)] == [0.0] * 49
    assert take_all([window], 0.0) > 0.0


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
