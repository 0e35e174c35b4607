"""Discord's per-route buckets, kept from the answers' X-RateLimit-* headers: calls wait
for a bucket's reset before they are sent (never inside discord.py, never as a 429)."""

from __future__ import annotations

import asyncio
import time

from core.clients.route_buckets import RateHeaders, RouteBuckets, RouteKey
from core.lanes import Lane
from core.sandbox import Sandbox
from tests.clients.conftest import GUILD, TEXT, MakeDiscord, routes

PUT = RouteKey("PUT /channels/{channel_id}/permissions/{target}", TEXT)
DELETE = RouteKey("DELETE /channels/{channel_id}/permissions/{target}", TEXT)
PUT_ROUTE = "PUT /channels/{channel_id}/permissions/{target}"


def answer(remaining: int, reset_after: float = 10.0, limit: int = 10) -> RateHeaders:
    return RateHeaders("overwrites", limit, remaining, reset_after)


async def test_an_unnamed_bucket_lets_one_call_through_until_an_answer_describes_it() -> None:
    buckets = RouteBuckets(time.monotonic, max_wait=30.0)
    async with buckets.acquire(PUT) as answers:
        assert buckets.spare(PUT) == 0  # the next call waits for this answer
        answers.append(answer(remaining=9))

    assert buckets.spare(PUT) == 9
    assert buckets.spare(DELETE) == 1  # another route: unnamed until its own answer


async def test_routes_sharing_a_bucket_count_against_it_together() -> None:
    buckets = RouteBuckets(time.monotonic, max_wait=30.0)
    async with buckets.acquire(PUT) as answers:
        answers.append(answer(remaining=9))
    async with buckets.acquire(DELETE) as answers:
        answers.append(answer(remaining=8))

    assert buckets.spare(PUT) == 8
    assert buckets.spare(RouteKey(PUT.route, "another channel")) == 10  # same limit there


async def test_an_exhausted_bucket_waits_for_its_reset_not_for_a_429() -> None:
    buckets = RouteBuckets(time.monotonic, max_wait=30.0)
    async with buckets.acquire(PUT) as answers:
        answers.append(answer(remaining=0, reset_after=0.2, limit=1))
    started = time.monotonic()

    async with buckets.acquire(PUT) as answers:
        waited = time.monotonic() - started
        answers.append(answer(remaining=0, reset_after=0.2, limit=1))

    assert waited >= 0.15


async def test_calls_past_a_channels_bucket_wait_for_its_reset_and_meet_no_429(
    sandbox: Sandbox, make_discord: MakeDiscord
) -> None:
    # Overwrites on one channel: 10 per 10 s nominally (0.1 s here); 14 at once.
    users = [f"1000000000000009{n:02d}" for n in range(14)]
    for user in users:
        sandbox.discord.add_user(user, f"u{user[-2:]}")
        sandbox.discord.add_member(GUILD, user)
    discord = await make_discord()

    await asyncio.gather(*(
        discord.set_member_overwrite(TEXT, user, 1024, 0, Lane.INTERACTIVE, "test")
        for user in users
    ))

    assert routes(sandbox.discord, PUT_ROUTE) == [204] * 14  # not one 429 among them
    times = sorted(r.time for r in sandbox.discord.request_log if r.route == PUT_ROUTE)
    assert times[10] - times[0] >= 0.09  # the 11th waited for the bucket's reset
    assert set(sandbox.discord.overwrites(TEXT)) >= set(users)
