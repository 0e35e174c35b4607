"""Syncer tests: the real syncers over the real clients against the sandbox, on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from discord.http import Route
from pydantic import SecretStr

from core.clock import SystemClock, TimeScale
from core.config import load_settings
from core.db.session import SessionFactory
from core.runtime import SyncerDeps
from core.sandbox import start_sandbox
from core.syncers.registry import build_syncers
from tests.world import GUILD, SCALE, World


@pytest.fixture(autouse=True)
def _route_base_restored() -> Iterator[None]:
    before = Route.BASE
    yield
    Route.BASE = before


@pytest.fixture
async def world(
    session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[World]:
    async with start_sandbox(time_scale=SCALE) as sandbox, AsyncExitStack() as stack:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        settings = load_settings(
            database_url=database_url,
            discord_bot_token=SecretStr(sandbox.discord_bot_token),
            discord_api_base_url=sandbox.discord_base_url,
            google_credentials_file=sandbox.write_service_account_file(tmp_path / "sa.json"),
            google_calendar_endpoint=sandbox.calendar_endpoint,
            time_scale=SCALE,
        )
        deps = SyncerDeps(settings, session_factory, SystemClock(), TimeScale(SCALE), None, stack)
        syncers = await build_syncers(deps)
        yield World(sandbox, settings, session_factory, syncers)
