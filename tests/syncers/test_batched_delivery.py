"""One discord sync's independent calls are in flight together, and its delivery records
are written a batch at a time: intents before the calls, outcomes after them. A crash
between the two leaves pending records that the next run settles from the live state.
Real clients against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import select

from core.db.models import DeliveryState, DiscordGrant, Group, SyncType, User
from core.lanes import Lane
from core.syncers.base import SyncContext
from tests.waiting import wait_for
from tests.world import World

PUT = "PUT /channels/{channel_id}/permissions/{target}"
INSERT = "POST /calendars/{calendar_id}/events"
SLOW = 50  # nominal seconds of injected latency: 0.5 s at the tests' time scale


async def _group_of(world: World, members: int) -> tuple[Group, list[User]]:
    group = await world.add_group(meetings=0)
    users = [await world.add_user() for _ in range(members)]
    await world.join(users[0], group)
    await world.sync(SyncType.DISCORD, group.id)  # the channels' buckets are known now
    for user in users[1:]:
        await world.join(user, group)
    world.clear_calls()
    return group, users


async def _states(world: World, group_id: int) -> dict[tuple[str, str], str]:
    async with world.sessions() as session:
        rows = (
            await session.execute(select(DiscordGrant).where(DiscordGrant.group_id == group_id))
        ).scalars()
        return {(r.target_id, r.discord_user_id): r.state for r in rows}


def _arrivals(world: World, route: str) -> list[float]:
    return sorted(r.time for r in world.sandbox.discord.request_log if r.route == route)


async def test_a_syncs_grants_are_in_flight_together(world: World) -> None:
    group, users = await _group_of(world, members=5)
    world.sandbox.discord.inject("latency", latency=SLOW, route=PUT, count=8)

    result = await world.sync(SyncType.DISCORD, group.id)

    assert result["granted"] == 8
    arrivals = _arrivals(world, PUT)
    assert len(arrivals) == 8
    # Every grant reached Discord before the first of them was answered (one after
    # another, they would span seven answers' latency).
    assert arrivals[-1] - arrivals[0] < SLOW * 0.01
    wanted = {u.discord_user_id for u in users}
    assert world.member_overwrites(group.discord_text_channel_id) == wanted
    assert set((await _states(world, group.id)).values()) == {DeliveryState.SETTLED.value}


async def test_a_crash_mid_batch_leaves_pending_records_the_next_run_settles(
    world: World,
) -> None:
    group, users = await _group_of(world, members=4)
    text, voice = group.discord_text_channel_id, group.discord_voice_channel_id
    # Discord applies every grant at once but answers none of them before the crash.
    world.sandbox.discord.inject("late_answer", latency=SLOW * 4, route=PUT, count=6)
    context = SyncContext(lane=Lane.INTERACTIVE, now=datetime.now(UTC))
    run = asyncio.create_task(world.syncers[SyncType.DISCORD].sync(group.id, context))
    wanted = {u.discord_user_id for u in users}
    await wait_for(lambda: world.member_overwrites(text) == wanted
                     and world.member_overwrites(voice) == wanted, timeout=10)
    run.cancel()  # the process dies (or the engine stops a run that lost its lease)
    await asyncio.gather(run, return_exceptions=True)

    states = await _states(world, group.id)
    newcomers = {u.discord_user_id for u in users[1:]}
    assert {k for k, s in states.items() if s == DeliveryState.PENDING.value} == {
        (channel, user) for channel in (text, voice) for user in newcomers
    }

    await world.leave(users[3])  # a pending grant of someone who has left is still ours
    world.clear_calls()
    result = await world.sync(SyncType.DISCORD, group.id)

    assert result["failed"] == 0
    assert world.calls()[PUT] == 0  # applied already: settled from the live state
    stays = wanted - {users[3].discord_user_id}
    assert world.member_overwrites(text) == stays
    assert world.member_overwrites(voice) == stays
    assert await _states(world, group.id) == {
        (channel, user): DeliveryState.SETTLED.value for channel in (text, voice) for user in stays
    }


async def test_a_calendar_syncs_event_writes_are_in_flight_together(world: World) -> None:
    group = await world.add_group(meetings=4)
    await world.join(await world.add_user(), group)
    world.sandbox.calendar.inject("latency", latency=SLOW, route=INSERT, count=4)

    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["created"] == 4
    arrivals = sorted(r.time for r in world.sandbox.calendar.request_log if r.route == INSERT)
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] < SLOW * 0.01  # all sent before the first answer
    records = await world.event_records(group.id)
    assert [r.state for r in records] == [DeliveryState.SETTLED.value] * 4
