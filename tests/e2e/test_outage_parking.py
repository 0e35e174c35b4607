"""During an outage the owed keys wait in their rows: no claim and record per key per window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.db.models import Group, SyncAttempt, SyncState, SyncType
from core.db.session import SessionFactory
from core.engine.loops.sweeper import OutboxSweeper
from core.engine.running.outbox import mark_owed
from core.sandbox import Sandbox
from tests.e2e.conftest import System, running_system, sweeping
from tests.waiting import wait_for
from tests.world import SCALE, World, sandbox_settings

GROUPS = 60
BREAKER_WINDOWS = 3
# Long breaker windows (1.5 s at the test scale), so that without parking every owed key
# is claimed and refused once per window even on a busy machine.
BREAKER_RESET_SECONDS = 150.0


@pytest.fixture
async def system(
    sandbox: Sandbox, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[System]:
    settings = sandbox_settings(
        sandbox, database_url, tmp_path, breaker_reset_seconds=BREAKER_RESET_SECONDS)
    async with running_system(settings, sandbox, session_factory) as running:
        yield running


async def owe_discord(world: World, groups: int) -> list[Group]:
    """``groups`` groups of one member each, converged but for a Discord sync now owed."""
    added = [await world.add_group(meetings=0) for _ in range(groups)]
    for group in added:
        await world.join(await world.add_user(), group)
    async with world.sessions() as session, session.begin():
        await session.execute(
            update(SyncState).values(
                completed_generation=SyncState.requested_generation, status="ok"
            )
        )
        await mark_owed(session, [g.id for g in added], datetime.now(UTC), [SyncType.DISCORD])
    return added


async def test_keys_of_a_service_with_an_open_circuit_are_parked_not_claimed(
    system: System,
) -> None:
    # Given many groups that owe their Discord sync, and Discord answering 503 to everything
    world = system.world
    groups = await owe_discord(world, GROUPS)
    storm = system.sandbox.discord.inject("5xx", status=503)

    # When the sweep works through several breaker windows of the outage
    async with sweeping(system.runtime):
        await asyncio.sleep(BREAKER_WINDOWS * BREAKER_RESET_SECONDS * SCALE)
        async with world.sessions() as session:
            rows = (await session.execute(
                select(SyncState).where(SyncState.sync_type == SyncType.DISCORD)
            )).scalars().all()
        storm.clear()
        await wait_for(system.all_converged, timeout=60, message="groups to converge")

    # Then only a few runs per window were claimed and recorded, not one per key per window
    claimed = [r for r in rows if r.last_attempt_at is not None]
    attempts = sum(r.attempt for r in rows)
    concurrency = system.runtime.settings.sync_concurrency
    bound = concurrency * (BREAKER_WINDOWS + 2)  # a slot's worth per window, and the opening
    assert len(claimed) <= bound, f"{len(claimed)} of {GROUPS} keys claimed"
    assert attempts <= bound, f"{attempts} failures recorded"
    for group in groups[:: len(groups) // 6]:
        assert len(world.member_overwrites(group.discord_text_channel_id)) == 1


async def test_a_half_open_window_runs_only_its_probe(system: System) -> None:
    # Given many groups that owe their Discord sync, and Discord answering 503 to everything
    world = system.world
    await owe_discord(world, GROUPS)
    storm = system.sandbox.discord.inject("5xx", status=503)
    board = system.runtime.client_board
    window = BREAKER_RESET_SECONDS * SCALE

    # When the sweep works through several breaker windows of the outage
    async with sweeping(system.runtime):
        await wait_for(
            lambda: any(s.breaker_state == "open" for s in board.statuses()),
            timeout=30, message="the Discord breaker to open")
        opened = datetime.now(UTC)
        await asyncio.sleep(BREAKER_WINDOWS * window)
        async with world.sessions() as session:
            after_opening = (await session.execute(
                select(SyncAttempt.outcome, SyncAttempt.at).where(
                    SyncAttempt.sync_type == SyncType.DISCORD)
            )).all()
        storm.clear()
        await wait_for(system.all_converged, timeout=60, message="groups to converge")

    # Then after the runs in flight when the breaker opened (half a window to finish),
    # each window's probe is the only run recorded: no run claimed its key only to be
    # refused by the circuit while another run probed
    late = [outcome for outcome, at in after_opening
            if at.replace(tzinfo=UTC) > opened + timedelta(seconds=window / 2)]
    assert "circuit_open" not in late, late
    assert len(late) <= BREAKER_WINDOWS, late


async def test_a_sweep_in_a_half_open_window_starts_one_probe_not_a_batch(
    system: System,
) -> None:
    # Given many groups owing their Discord sync, and Discord's breaker opened by a 503 storm
    world = system.world
    await owe_discord(world, GROUPS)
    storm = system.sandbox.discord.inject("5xx", status=503)
    board = system.runtime.client_board
    sweeper = OutboxSweeper(system.runtime)
    try:
        assert await sweeper.sweep_once() > 1  # healthy as far as it knows: a whole batch
        await wait_for(lambda: any(s.breaker_state == "open" for s in board.statuses()),
                       timeout=30, message="the Discord breaker to open")

        # When the breaker half-opens (and no refusal parks Discord any longer) and the
        # sweep looks for due keys
        parking = system.runtime.parking
        await wait_for(
            lambda: SyncType.DISCORD not in parking.parked_types(time.monotonic(),
                                                                 board.statuses()),
            timeout=30, message="Discord to be unparked by the half-open breaker")
        assert any(s.breaker_state == "half_open" for s in board.statuses())
        started = await sweeper.sweep_once()

        # Then it starts at most the one key that probes (none if a retry timer's run
        # already does), not a batch that would only be parked
        assert started <= 1
    finally:
        storm.clear()
    stop = asyncio.Event()
    loop = asyncio.create_task(sweeper.run(stop))
    try:
        await wait_for(system.all_converged, timeout=60, message="groups to converge")
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await loop
