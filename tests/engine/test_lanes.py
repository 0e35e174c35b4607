"""Lanes in the engine: interactive keys never wait behind background work, a run waiting
for a rate-limit token gives its slot up, and the keys of one change run independently."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

from core.clients.ratelimit import LaneLimiter, LimiterConfig, Rate
from core.db.models import SyncType
from core.engine.running import runner
from core.engine.running.outbox import mark_owed
from core.engine.running.slots import RunSlots
from core.engine.running.state import SyncKey
from core.group_joining import sync_after_group_change
from core.lanes import Lane, LaneAsk, slot_released
from core.lifecycle import mark_and_run
from core.runtime import Runtime
from core.syncers.base import SyncContext, SyncResult
from tests.engine.conftest import ALL_TYPES, Fakes, RuntimeMaker, status_of
from tests.waiting import wait_for

OLD, NEW = 7, 8


class TokenWaiter:
    """A discord syncer whose one call waits for a token its bucket will not have for an
    hour: the real client limiter, nothing else."""

    sync_type = SyncType.DISCORD

    def __init__(self) -> None:
        config = LimiterConfig((Rate(1, 3600.0, burst=1),), max_wait=7200.0)
        self.limiter = LaneLimiter("fake", config, time.monotonic)
        self.waiting = 0

    async def drain_bucket(self) -> None:
        await self.limiter.acquire(Lane.INTERACTIVE)

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        self.waiting += 1
        await self.limiter.acquire(context.lane)
        return {"failed": 0}


async def background_runs_waiting_on_tokens(rt: Runtime, groups: range) -> TokenWaiter:
    waiter = TokenWaiter()
    await waiter.drain_bucket()
    rt.syncers = {**rt.syncers, SyncType.DISCORD: waiter}
    async with rt.session_factory() as session, session.begin():
        await mark_owed(session, list(groups), rt.clock.now(), [SyncType.DISCORD])
    for group in groups:
        key = SyncKey(SyncType.DISCORD, group)
        rt.coordinator.spawn(runner.run_key(rt, key, lane=Lane.BACKGROUND))
    return waiter


async def test_an_interactive_key_starts_while_all_background_slots_wait_on_tokens(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    rt = await make_runtime(sync_concurrency=4)
    waiter = await background_runs_waiting_on_tokens(rt, range(1, 5))
    await wait_for(lambda: waiter.waiting >= 3, message="background runs to wait")

    (result,) = await asyncio.wait_for(
        mark_and_run(rt, [SyncKey(SyncType.CALENDAR, 50)]), timeout=10)

    assert "error" not in result
    assert await status_of(rt.session_factory, "calendar", 50) == "ok"


async def test_a_run_waiting_for_a_token_gives_its_slot_to_another_background_key(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    rt = await make_runtime(sync_concurrency=4)
    waiter = await background_runs_waiting_on_tokens(rt, range(1, 7))
    await wait_for(lambda: waiter.waiting == 6, message="all six to claim and wait")

    (result,) = await asyncio.wait_for(
        mark_and_run(rt, [SyncKey(SyncType.CALENDAR, 50)], lane=Lane.BACKGROUND), timeout=10)

    assert "error" not in result
    assert await status_of(rt.session_factory, "calendar", 50) == "ok"


async def test_a_blocked_key_of_a_change_does_not_hold_back_the_others(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    rt = await make_runtime()
    fakes.set(f"discord:{OLD}", "ok", sleep=60)  # a key stuck far longer than the test

    change = asyncio.create_task(sync_after_group_change(NEW, previous_group_id=OLD))
    try:
        others = [(t, g) for g in (OLD, NEW) for t in ALL_TYPES if (t, g) != ("discord", OLD)]

        async def others_done() -> bool:
            statuses = [await status_of(rt.session_factory, t, g) for t, g in others]
            return statuses == ["ok"] * len(others)

        await wait_for(others_done, timeout=20, message="the seven other keys to be synced")
        assert await status_of(rt.session_factory, "discord", OLD) == "running"
        assert not change.done()
    finally:
        change.cancel()
        with suppress(asyncio.CancelledError):
            await change


def test_background_runs_never_take_the_slots_reserved_for_interactive() -> None:
    async def scenario() -> tuple[int, int, bool]:
        slots = RunSlots(8)
        held = [asyncio.create_task(slots.acquire(Lane.BACKGROUND)) for _ in range(8)]
        await asyncio.sleep(0)
        background = slots.busy(Lane.BACKGROUND)
        await asyncio.wait_for(slots.acquire(Lane.INTERACTIVE), timeout=1)
        await asyncio.wait_for(slots.acquire(Lane.INTERACTIVE), timeout=1)
        third = asyncio.create_task(slots.acquire(Lane.INTERACTIVE))
        await asyncio.sleep(0)
        blocked = not third.done()
        slots.release(Lane.BACKGROUND)  # the freed slot goes to the interactive waiter first
        await asyncio.wait_for(third, timeout=1)
        for task in held:
            task.cancel()
        return background, slots.busy(Lane.INTERACTIVE), blocked

    background, interactive, blocked = asyncio.run(scenario())

    assert (background, interactive, blocked) == (6, 3, True)


async def test_a_run_whose_calls_wait_together_never_holds_two_slots() -> None:
    slots = RunSlots(2, reserved=0)
    gate = asyncio.Event()

    async def call() -> None:  # what the limiter does around a token wait
        async with slot_released():
            await gate.wait()

    async with slots.hold(Lane.INTERACTIVE):
        waits = [asyncio.create_task(call()) for _ in range(3)]
        await asyncio.sleep(0)  # all three wait for tokens: the run's slot is free
        await slots.acquire(Lane.INTERACTIVE)  # two other runs take both slots
        await slots.acquire(Lane.INTERACTIVE)
        gate.set()
        await asyncio.sleep(0)  # the calls got their tokens and queue for a slot
        slots.release(Lane.INTERACTIVE)  # the other runs end, one after the other
        await asyncio.sleep(0)
        slots.release(Lane.INTERACTIVE)
        await asyncio.wait_for(asyncio.gather(*waits), timeout=1)
        held = slots.busy(Lane.INTERACTIVE)

    assert (held, slots.busy(Lane.INTERACTIVE)) == (1, 0)


async def test_an_interactive_request_for_a_key_queued_in_the_background_starts_at_once(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    # Two slots, one reserved for interactive runs: background keys run one at a time.
    fakes.set("discord:*", "ok", sleep=1.0)
    rt = await make_runtime(sync_concurrency=2)
    groups = list(range(101, 106))
    async with rt.session_factory() as session, session.begin():
        await mark_owed(session, groups, rt.clock.now(), [SyncType.DISCORD])
    background = [asyncio.create_task(runner.run_key(
        rt, SyncKey(SyncType.DISCORD, g), lane=Lane.BACKGROUND, reason="sweep"))
        for g in groups]
    async def first_running() -> bool:
        return await status_of(rt.session_factory, "discord", groups[0]) == "running"

    await wait_for(first_running, message="the first background run")
    queued = groups[-1]  # fourth in the background queue behind the running one
    interactive = asyncio.create_task(runner.run_key(rt, SyncKey(SyncType.DISCORD, queued)))

    await interactive
    runs = {r["group"]: r for r in fakes.runs("discord")}
    # It inherited the interactive lane: it ran in the reserved slot beside the running
    # background key, ahead of the three queued before it, with the interactive context.
    assert runs[queued]["lane"] == "interactive"
    assert runs[queued]["start"] < runs[groups[0]]["end"]
    assert not set(groups[1:-1]) & set(runs)  # those had not finished yet
    await asyncio.gather(*background)
    assert sorted(r["group"] for r in fakes.runs("discord")) == groups  # each ran once


async def test_the_outbox_sweep_leaves_a_key_alone_while_a_bulk_retry_makes_it_due(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    # The bulk worker makes its key due inside the key's coordination (run_key's
    # prepare), so a sweep at that very moment finds the key busy and does not run it
    # beside the bulk as interactive (seen in CI: a bulk retry's keys ran interactive).
    from core.admin.control import make_due
    from core.engine.loops.sweeper import OutboxSweeper

    rt = await make_runtime()
    key = SyncKey(SyncType.DISCORD, 301)
    async with rt.session_factory() as session, session.begin():
        await mark_owed(session, [key.group_id], rt.clock.now(), [SyncType.DISCORD])
    swept: list[int] = []

    async def due_then_a_sweep() -> bool:
        made = await make_due(rt.session_factory, key, rt.clock.now())
        swept.append(await OutboxSweeper(rt).sweep_once())  # the key is due right now
        return made

    result = await runner.run_key(rt, key, lane=Lane.BACKGROUND, reason="bulk",
                                  prepare=due_then_a_sweep)
    assert swept == [0]
    assert "skipped" not in result
    assert [r["lane"] for r in fakes.runs("discord", key.group_id)] == ["background"]


class RefreshWaiter:
    """An rsvps syncer whose one call (the calendar read of an RSVP refresh) waits for a
    token of the real client limiter: interactive tokens are plenty, the background lane
    has one an hour, taken up front. It notes every call let through, with its lane."""

    sync_type = SyncType.RSVPS

    def __init__(self) -> None:
        config = LimiterConfig((Rate(1000, 3600.0, burst=1000),), background_share=0.001,
                               max_wait=7200.0)
        self.limiter = LaneLimiter("calendar", config, time.monotonic)
        self.waiting: set[int] = set()
        self.calls: list[tuple[int, Lane]] = []

    async def drain_background(self) -> None:
        await self.limiter.acquire(Lane.BACKGROUND)

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        self.waiting.add(group_id)
        lane = await self.limiter.acquire(context.lane)
        self.calls.append((group_id, lane))
        return {"meetings": 1, "failed": 0}


async def test_a_change_never_waits_for_the_background_queue_its_key_is_in(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    # Given: every group's RSVP key re-run in the background lane, each run in flight and
    # waiting for a background token behind the others (the lane is saturated: ten runs
    # outstanding for its six slots, and no background token comes during the test).
    rt = await make_runtime()
    refresh = RefreshWaiter()
    await refresh.drain_background()
    rt.syncers = {**rt.syncers, SyncType.RSVPS: refresh}
    groups = list(range(101, 111))
    async with rt.session_factory() as session, session.begin():
        await mark_owed(session, groups, rt.clock.now(), [SyncType.RSVPS])
    for group in groups:
        rt.coordinator.spawn(runner.run_key(
            rt, SyncKey(SyncType.RSVPS, group), lane=Lane.BACKGROUND, reason="rsvp_refresh"))
    await wait_for(lambda: refresh.waiting == set(groups), message="all ten refreshes waiting")

    # When: a member of the last group in that queue switches in from another group.
    await asyncio.wait_for(sync_after_group_change(groups[-1], previous_group_id=OLD), timeout=20)

    # Then: the group's background run was raised and read in the interactive lane, then
    # the change's own run; no other key of the background queue has been let through.
    ours = [lane for group, lane in refresh.calls if group == groups[-1]]
    assert ours == [Lane.INTERACTIVE, Lane.INTERACTIVE]
    assert {group for group, _ in refresh.calls} == {OLD, groups[-1]}
    assert await status_of(rt.session_factory, "rsvps", groups[-1]) == "ok"


async def test_a_raised_run_leaves_the_background_token_queue_and_takes_its_slot_back() -> None:
    slots = RunSlots(4, reserved=1)
    limiter = RefreshWaiter().limiter  # one background token an hour
    await limiter.acquire(Lane.BACKGROUND)
    asks = [LaneAsk(Lane.BACKGROUND) for _ in range(3)]
    asking: list[int] = []
    let_through: list[tuple[int, Lane]] = []

    async def run(n: int) -> None:
        async with slots.hold(asks[n]):
            asking.append(n)
            let_through.append((n, await limiter.acquire(Lane.BACKGROUND)))
            await asyncio.Event().wait()  # holds its slot until cancelled

    runs = [asyncio.create_task(run(n)) for n in range(3)]
    await wait_for(lambda: len(asking) == 3 and slots.busy(Lane.BACKGROUND) == 0,
                   message="all three to wait for a token, their slots free")

    asks[2].raise_to(Lane.INTERACTIVE)  # the last in the queue: an interactive caller came
    await wait_for(lambda: let_through == [(2, Lane.INTERACTIVE)], message="the raised call")

    # It holds a slot again (the interactive lane's: its ask is interactive now); the
    # other two still wait in the background lane, their slots free.
    assert (slots.busy(Lane.INTERACTIVE), slots.busy(Lane.BACKGROUND)) == (1, 0)
    for task in runs:
        task.cancel()
    await asyncio.gather(*runs, return_exceptions=True)
    assert (slots.busy(Lane.INTERACTIVE), slots.busy(Lane.BACKGROUND)) == (0, 0)
