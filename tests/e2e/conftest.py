"""End-to-end fixtures: the sandbox, a database, and groupsync's real runtime (real
syncers, real clients, installed in the process slot with the real APScheduler as
``_scheduler``), driven through the public contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import Settings
from core.db.models import SyncState
from core.db.session import SessionFactory
from core.engine.loops.sweeper import OutboxSweeper
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SyncScheduler
from core.runtime import Runtime, open_runtime
from core.sandbox import Sandbox, start_sandbox
from tests.world import GUILD, SCALE, World, sandbox_settings


@dataclass
class System:
    world: World
    runtime: Runtime

    @property
    def sandbox(self) -> Sandbox:
        return self.world.sandbox

    async def state(self, sync_type: str, group_id: int) -> SyncState:
        async with self.world.sessions() as session:
            row = await session.get(SyncState, (sync_type, group_id))
        assert row is not None, f"no sync_state row for {sync_type}:{group_id}"
        return row

    async def all_converged(self) -> bool:
        async with self.world.sessions() as session:
            rows = (await session.execute(select(SyncState))).scalars().all()
        return all(
            r.status == "ok" and r.requested_generation == r.completed_generation for r in rows
        )


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        yield sandbox


@pytest.fixture
async def system(
    sandbox: Sandbox, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[System]:
    async with running_system(sandbox_settings(sandbox, database_url, tmp_path), sandbox,
                              session_factory) as running:
        yield running


@asynccontextmanager
async def running_system(
    settings: Settings, sandbox: Sandbox, session_factory: SessionFactory
) -> AsyncIterator[System]:
    """A runtime on ``settings`` in this process, with its scheduler started and installed
    in the process slot, as an embedding application runs it; drained after the block."""
    async with AsyncExitStack() as stack:
        scheduler = SyncScheduler()
        runtime = await open_runtime(settings, stack, scheduler=scheduler)
        scheduler.start()
        try:
            with scheduler_module.installed(runtime, scheduler):
                yield System(World(sandbox, settings, session_factory, runtime.syncers), runtime)
        finally:
            scheduler.shutdown(wait=False)
            await runtime.coordinator.drain(2.0)


@asynccontextmanager
async def sweeping(runtime: Runtime) -> AsyncIterator[None]:
    """The outbox sweeper running for the block, as the daemon runs it; stopped after."""
    stop = asyncio.Event()
    sweeper = asyncio.create_task(OutboxSweeper(runtime).run(stop))
    try:
        yield
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await sweeper
