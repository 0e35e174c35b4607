"""During an outage the owed keys wait in their rows: no claim and record per key per window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.db.models import SyncState, SyncType
from core.db.session import SessionFactory
from core.engine.outbox import mark_owed
from core.engine.sweeper import OutboxSweeper
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SyncScheduler
from core.runtime import open_runtime
from core.sandbox import Sandbox
from tests.e2e.conftest import System
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
    async with AsyncExitStack() as stack:
        scheduler = SyncScheduler()
        runtime = await open_runtime(settings, stack, scheduler=scheduler)
        scheduler.start()
        scheduler_module._scheduler = scheduler
        try:
            yield System(World(sandbox, settings, session_factory, runtime.syncers), runtime)
        finally:
            scheduler_module._scheduler = None
            scheduler.shutdown(wait=False)
            await runtime.coordinator.drain(2.0)


async def test_keys_of_a_service_with_an_open_circuit_are_parked_not_claimed(
    system: System,
) -> None:
    # Given many groups that owe their Discord sync, and Discord answering 503 to everything
    world = system.world
    groups = [await world.add_group(meetings=0) for _ in range(GROUPS)]
    for group in groups:
        await world.join(await world.add_user(), group)
    async with world.sessions() as session, session.begin():
        await session.execute(
            update(SyncState).values(
                completed_generation=SyncState.requested_generation, status="ok"
            )
        )
        await mark_owed(session, [g.id for g in groups], datetime.now(UTC), [SyncType.DISCORD])
    storm = system.sandbox.discord.inject("5xx", status=503)

    # When the sweep works through several breaker windows of the outage
    stop = asyncio.Event()
    sweeper = asyncio.create_task(OutboxSweeper(system.runtime).run(stop))
    try:
        await asyncio.sleep(BREAKER_WINDOWS * BREAKER_RESET_SECONDS * SCALE)
        async with world.sessions() as session:
            rows = (await session.execute(
                select(SyncState).where(SyncState.sync_type == SyncType.DISCORD.value)
            )).scalars().all()
        storm.clear()
        await wait_for(system.all_converged, timeout=60, message="groups to converge")
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await sweeper

    # Then only a few runs per window were claimed and recorded, not one per key per window
    claimed = [r for r in rows if r.last_attempt_at is not None]
    attempts = sum(r.attempt for r in rows)
    concurrency = system.runtime.settings.sync_concurrency
    bound = concurrency * (BREAKER_WINDOWS + 2)  # a slot's worth per window, and the opening
    assert len(claimed) <= bound, f"{len(claimed)} of {GROUPS} keys claimed"
    assert attempts <= bound, f"{attempts} failures recorded"
    for group in groups[:: len(groups) // 6]:
        assert len(world.member_overwrites(group.discord_text_channel_id)) == 1
