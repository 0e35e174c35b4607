"""End-to-end fixtures: the sandbox, a database, and groupsync's real runtime (real
syncers, real clients, the real APScheduler installed as ``_scheduler``), driven through
the public contract."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from discord.http import Route
from pydantic import SecretStr
from sqlalchemy import select

from core.config import Settings, load_settings
from core.db.models import SyncState
from core.db.session import SessionFactory
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SyncScheduler
from core.runtime import Runtime, open_runtime
from core.sandbox import Sandbox, start_sandbox
from tests.world import GUILD, SCALE, World


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


def system_settings(sandbox: Sandbox, database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return load_settings(
        database_url=database_url,
        discord_bot_token=SecretStr(sandbox.discord_bot_token),
        discord_api_base_url=sandbox.discord_base_url,
        google_credentials_file=sandbox.write_service_account_file(tmp_path / "sa.json"),
        google_calendar_endpoint=sandbox.calendar_endpoint,
        time_scale=SCALE,
        outbox_poll_seconds=0.1,
        shutdown_timeout_seconds=2.0,
        **extra,
    )


@pytest.fixture(autouse=True)
def _route_base_restored() -> Iterator[None]:
    before = Route.BASE
    yield
    Route.BASE = before


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        yield sandbox


@pytest.fixture
async def system(
    sandbox: Sandbox, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[System]:
    settings = system_settings(sandbox, database_url, tmp_path)
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


async def wait_for(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 30.0,
    message: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)
