"""Failures end in a state an operator can read, and in convergence once cleared."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import structlog
from sqlalchemy import update

from core.db.models import SyncState, SyncType
from core.engine.running.outbox import mark_owed
from core.group_joining import sync_after_group_change
from tests.e2e.conftest import System, sweeping
from tests.waiting import wait_for
from tests.world import SCALE

NOMINAL_RETRY_AFTER = 60.0  # the server's hint; the sandbox reports it scaled


async def needs_attention(system: System, sync_type: str, group_id: int) -> SyncState:
    """The row as an operator sees it between retries (a retry may be running right now)."""
    rows: list[SyncState] = []

    async def settled() -> bool:
        rows.append(await system.state(sync_type, group_id))
        return rows[-1].status == "needs_attention"

    await wait_for(settled, message=f"{sync_type} to need attention")
    return rows[-1]


async def test_calendar_5xx_is_retried_until_it_converges(system: System) -> None:
    world = system.world
    group, ann = await world.group_with_member(meetings=1)
    insert = "POST /calendars/{calendar_id}/events"
    system.sandbox.calendar.inject("5xx", count=6, status=503, route=insert)

    await sync_after_group_change(group.id)

    await wait_for(system.all_converged, message="calendar retries to converge")
    assert list(world.attendees(group).values()) == [{ann.email}]
    assert system.sandbox.calendar.counts()[(insert, 503)] == 6
    row = await system.state(SyncType.CALENDAR, group.id)
    assert (row.attempt, row.last_error, row.failing_since) == (0, None, None)


@pytest.mark.parametrize("service", ["discord", "calendar"])
async def test_429_with_retry_after_delays_the_retry_then_converges(
    system: System, service: str
) -> None:
    world = system.world
    group, _ = await world.group_with_member(meetings=1)
    fake = system.sandbox.discord if service == "discord" else system.sandbox.calendar
    if service == "discord":
        fake.inject("429", count=1, retry_after=NOMINAL_RETRY_AFTER)
    else:  # aimed at the API, not at the OAuth token endpoint
        route = "POST /calendars/{calendar_id}/events"
        fake.inject("429", count=1, retry_after=NOMINAL_RETRY_AFTER, route=route)

    with structlog.testing.capture_logs() as logs:
        await sync_after_group_change(group.id)
        await wait_for(system.all_converged, message=f"{service} to converge after the 429")

    sync_type = SyncType.DISCORD if service == "discord" else SyncType.CALENDAR
    (failure,) = [e for e in logs if e["event"] == "sync_failed" and e["sync_type"] == sync_type]
    hint = NOMINAL_RETRY_AFTER * SCALE  # the sandbox reports the hint scaled
    backoff = 2.0 * SCALE  # the most the backoff alone would wait after one failure
    assert failure["error_kind"] == "rate_limited"
    assert failure["delay"] >= hint * 0.9 > backoff
    # And the service really was left alone that long: the retry's request came after the
    # hint. (A call of the same run already in flight beside the refused one may land
    # just after it: it is judged by its own path.)
    requests = fake.request_log
    limited = next(r for r in requests if r.status == 429)
    retried = next(r for r in requests if r.time > limited.time and r.path == limited.path)
    assert retried.time - limited.time >= hint * 0.9


async def test_deleted_channel_needs_attention_then_converges_once_fixed(system: System) -> None:
    world = system.world
    group, ann = await world.group_with_member(meetings=0)
    text = group.discord_text_channel_id
    assert text is not None
    system.sandbox.discord.delete_channel(text)

    await sync_after_group_change(group.id)

    row = await needs_attention(system, SyncType.DISCORD, group.id)
    assert "Unknown Channel" in (row.last_error or "")
    assert world.member_overwrites(group.discord_voice_channel_id) == {ann.discord_user_id}
    # The operator recreates the channel; the capped retry picks it up.
    system.sandbox.discord.add_channel(text, group.discord_guild_id, "recreated", type=0)
    await wait_for(system.all_converged, message="the discord sync to converge")
    assert world.member_overwrites(text) == {ann.discord_user_id}


@pytest.mark.parametrize("service", ["discord", "calendar"])
async def test_revoked_token_needs_attention_then_converges_once_restored(
    system: System, service: str
) -> None:
    world = system.world
    group, _ = await world.group_with_member(meetings=1)
    fake = system.sandbox.discord if service == "discord" else system.sandbox.calendar
    fault = fake.inject("revoked_token")

    await sync_after_group_change(group.id)

    sync_type = SyncType.DISCORD if service == "discord" else SyncType.CALENDAR
    row = await needs_attention(system, sync_type, group.id)
    assert row.last_error
    assert row.error_kind == "credentials_rejected"
    assert world.settings.discord_bot_token is not None
    assert world.settings.discord_bot_token.get_secret_value() not in row.last_error
    fault.clear()
    # The service is parked: the daemon's sweep probes it and resumes its keys
    async with sweeping(system.runtime):
        await wait_for(system.all_converged, message=f"{service} to converge after the token")


async def test_outage_calls_are_bounded_by_the_breaker_not_by_groups(system: System) -> None:
    world = system.world
    groups = [await world.add_group(meetings=0) for _ in range(200)]
    for group in groups:
        await world.join(await world.add_user(), group)
    storm = system.sandbox.discord.inject("5xx", status=503)
    world.clear_calls()
    async with world.sessions() as session, session.begin():
        # Only the discord syncs are owed, so the outage window is spent on them.
        await session.execute(
            update(SyncState).values(
                completed_generation=SyncState.requested_generation, status="ok"
            )
        )
        await mark_owed(session, [g.id for g in groups], datetime.now(UTC), [SyncType.DISCORD])

    async with sweeping(system.runtime):
        # The window is two scaled minutes from the first refusal: a loaded machine may
        # take longer than that to start the first of 200 runs at all.
        await wait_for(lambda: any(r.status == 503 for r in system.sandbox.discord.request_log),
                       timeout=60, message="the outage's first refused call")
        outage = 120 * SCALE  # two minutes, scaled
        await asyncio.sleep(outage)
        during = sum(1 for r in system.sandbox.discord.request_log if r.status == 503)
        storm.clear()
        await wait_for(system.all_converged, timeout=90, message="200 groups to converge")

    assert 0 < during <= 40, f"{during} Discord calls during the outage"
    for group in groups[:: len(groups) // 10]:
        assert len(world.member_overwrites(group.discord_text_channel_id)) == 1
