"""Syncer tests: the real syncers over the real clients against the sandbox, on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from core.clock import SystemClock, TimeScale
from core.db.session import SessionFactory
from core.runtime import SyncerDeps
from core.sandbox import start_sandbox
from core.syncers.registry import build_syncers
from tests.world import GUILD, SCALE, World, sandbox_settings


@pytest.fixture
async def world(
    session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[World]:
    async with start_sandbox(time_scale=SCALE) as sandbox, AsyncExitStack() as stack:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        settings = sandbox_settings(sandbox, database_url, tmp_path)
        deps = SyncerDeps(settings, session_factory, SystemClock(), TimeScale(SCALE), stack)
        syncers = await build_syncers(deps)
        yield World(sandbox, settings, session_factory, syncers)
