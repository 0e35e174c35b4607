"""Token buckets (pure) and the two-lane limiter (real sleeps, short rates)."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.clients.ratelimit import LaneLimiter, LimiterConfig, Rate, TokenBucket, take_all
from core.errors import RateLimitedError
from core.lanes import Lane


@pytest.mark.parametrize(
    ("rate", "takes", "now", "wait"),
    [
        (Rate(10, 1.0), 0, 0.0, 0.0),
        (Rate(10, 1.0), 10, 0.0, 0.1),
        (Rate(10, 1.0), 10, 0.05, 0.05),
        (Rate(10, 1.0), 10, 1.0, 0.0),
        (Rate(600, 60.0, burst=60), 60, 0.0, 0.1),
        (Rate(2, 1.0, burst=1), 1, 0.25, 0.25),
    ],
)
def test_bucket_wait_time(rate: Rate, takes: int, now: float, wait: float) -> None:
    bucket = TokenBucket(rate, now=0.0)
    for _ in range(takes):
        bucket.take(0.0)

    assert bucket.wait_time(now) == pytest.approx(wait)


def test_take_all_takes_from_every_bucket_or_from_none() -> None:
    roomy, empty = TokenBucket(Rate(10, 1.0), 0.0), TokenBucket(Rate(1, 1.0), 0.0)
    empty.take(0.0)

    assert take_all([roomy, empty], 0.0) == pytest.approx(1.0)
    assert roomy.available(0.0) == pytest.approx(10.0)
    assert take_all([roomy, empty], 1.0) == 0.0
    assert roomy.available(1.0) == pytest.approx(9.0)


def limiter(per_second: float = 1000.0, max_wait: float = 0.5, share: float = 0.5) -> LaneLimiter:
    config = LimiterConfig((Rate(per_second, 1.0, per_second / 10),), share, max_wait)
    return LaneLimiter("test", config, time.monotonic)


async def test_background_gets_only_its_share_of_the_rate() -> None:
    lanes = limiter(per_second=100.0, share=0.2)  # background: 20/s, burst 2
    start = time.monotonic()

    for _ in range(6):
        await lanes.acquire(Lane.BACKGROUND)

    assert time.monotonic() - start >= 0.15  # 4 calls past the burst at 20/s


async def test_a_background_route_limit_pauses_only_the_background_lane() -> None:
    lanes = limiter()
    lanes.pause(Lane.BACKGROUND, 3.0, is_global=False)
    start = time.monotonic()

    await lanes.acquire(Lane.INTERACTIVE)

    assert time.monotonic() - start < 1.0  # not held for the background's 3 s
    assert lanes.paused_for(Lane.BACKGROUND) > 1.0


async def test_an_interactive_route_limit_holds_background_back_but_not_interactive() -> None:
    lanes = limiter()
    lanes.pause(Lane.INTERACTIVE, 0.3, is_global=False)

    assert lanes.paused_for(Lane.INTERACTIVE) == 0.0
    assert lanes.paused_for(Lane.BACKGROUND) > 0.2


async def test_a_global_limit_pauses_both_lanes() -> None:
    lanes = limiter()
    lanes.pause(Lane.BACKGROUND, 0.1, is_global=True)
    start = time.monotonic()

    await lanes.acquire(Lane.INTERACTIVE)

    assert time.monotonic() - start >= 0.09


async def test_a_pause_longer_than_max_wait_raises_instead_of_holding_the_task() -> None:
    lanes = limiter(max_wait=0.05)
    lanes.pause(Lane.BACKGROUND, 10.0, is_global=True)

    with pytest.raises(RateLimitedError) as caught:
        await lanes.acquire(Lane.INTERACTIVE)

    assert caught.value.retry_after == pytest.approx(10.0, abs=0.1)
    assert caught.value.is_global


async def test_background_waits_while_interactive_calls_are_waiting() -> None:
    lanes = limiter(per_second=20.0, share=1.0)  # burst 2
    order: list[str] = []

    async def call(lane: Lane, name: str) -> None:
        await lanes.acquire(lane)
        order.append(name)

    await asyncio.gather(
        *(call(Lane.INTERACTIVE, f"i{n}") for n in range(4)),
        *(call(Lane.BACKGROUND, f"b{n}") for n in range(2)),
    )

    assert sorted(order[:4]) == ["i0", "i1", "i2", "i3"]
