"""Embedding (DESIGN §2 b): one runtime per process, started by the application; the
public calls in that process run on it; without it they hand off to the daemon."""

from __future__ import annotations

import os

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from core import embed, lifecycle
from core.db.models import SyncStatus
from core.db.session import SessionFactory
from core.embed import RuntimeAlreadyRunning
from core.group_joining import sync_after_group_change
from core.notifications import scheduler as scheduler_module
from tests.embedding.conftest import Fakes
from tests.engine.conftest import engine_settings, row

G = 51


async def test_public_calls_run_on_the_embedded_runtime_with_the_apps_engine(
    database_url: str, engine: AsyncEngine, session_factory: SessionFactory, fakes: Fakes
) -> None:
    async with embed.start(engine_settings(database_url), engine=engine) as groupsync:
        assert groupsync.leading
        assert scheduler_module.current_runtime() is groupsync.runtime
        result = await lifecycle.sync_group_calendar(G)
        await sync_after_group_change(G + 1)

    assert result["failed"] == 0
    assert "handed_off" not in result
    assert {r["pid"] for r in fakes.runs(group=G)} == {os.getpid()}
    assert len(fakes.runs(group=G + 1)) == 4  # discord, calendar, reminders, rsvps
    assert (await row(session_factory, "calendar", G)).status == SyncStatus.OK.value
    # stopped cleanly: nothing installed, and the application's engine still works
    assert scheduler_module.current_runtime() is None
    assert scheduler_module.current_scheduler() is None
    assert (await row(session_factory, "discord", G + 1)).status == SyncStatus.OK.value


async def test_a_second_runtime_in_one_process_is_refused(
    database_url: str, engine: AsyncEngine, fakes: Fakes
) -> None:
    async with embed.start(engine_settings(database_url), engine=engine):
        with pytest.raises(RuntimeAlreadyRunning):
            await embed.start(engine_settings(database_url), engine=engine).start()


async def test_without_a_runtime_public_calls_hand_off_and_run_nothing_here(
    database_url: str, session_factory: SessionFactory, fakes: Fakes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    with structlog.testing.capture_logs() as logs:
        await sync_after_group_change(G, previous_group_id=G + 1)
        result = await lifecycle.sync_group_rsvps(G + 2)

    assert result == {"handed_off": "daemon"}
    assert fakes.runs() == []
    for sync_type in ("discord", "calendar", "reminders", "rsvps"):
        for group in (G, G + 1):
            state = await row(session_factory, sync_type, group)
            assert state.requested_generation > state.completed_generation  # owed
    assert [e["event"] for e in logs] == ["sync_handed_off", "sync_handed_off"]


async def test_embedded_runtime_refuses_a_database_that_is_not_migrated(
    empty_database_url: str, fakes: Fakes
) -> None:
    with pytest.raises(Exception, match="migrate"):
        await embed.start(engine_settings(empty_database_url)).start()
    assert scheduler_module.current_runtime() is None
