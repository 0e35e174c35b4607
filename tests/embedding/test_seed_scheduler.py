"""The seed's embedding (DESIGN §2): the application assigns its own APScheduler 3
scheduler to ``core.notifications.scheduler._scheduler``; retries become the documented
``date`` job on it, whose function runs the key through the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy.ext.asyncio import AsyncEngine

from core import embed, lifecycle
from core.db.models import SyncStatus
from core.db.session import SessionFactory
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import RETRY_JOB_FUNC, schedule_sync_retry
from tests.embedding.conftest import Fakes
from tests.engine.conftest import engine_settings, row
from tests.waiting import wait_for

G = 123
SCALE = 0.5  # attempt 0 waits 1-2 backoff seconds: 0.5-1 s here, long enough to look at


@pytest.fixture(params=["asyncio", "background"])
async def app_scheduler(request: pytest.FixtureRequest) -> AsyncIterator[BaseScheduler]:
    scheduler: BaseScheduler = (
        AsyncIOScheduler(timezone=UTC) if request.param == "asyncio"
        else BackgroundScheduler(timezone=UTC)
    )
    scheduler.start()
    scheduler_module._scheduler = scheduler  # what the seed application does
    yield scheduler
    scheduler.shutdown(wait=False)


async def test_a_failed_sync_arms_the_documented_job_on_the_apps_scheduler(
    database_url: str, engine: AsyncEngine, session_factory: SessionFactory, fakes: Fakes,
    app_scheduler: BaseScheduler,
) -> None:
    # Given an embedded runtime next to the application's scheduler, and a failing calendar
    fakes.set(f"calendar:{G}", "raise")
    async with embed.start(engine_settings(database_url, time_scale=SCALE), engine=engine):
        assert scheduler_module.current_scheduler() is app_scheduler  # kept, not replaced
        # When the sync fails
        before = datetime.now(UTC)
        result = await lifecycle.sync_group_calendar(G)
        # Then the retry is the documented job, due now + the scaled backoff
        assert "error" in result
        job = app_scheduler.get_job(f"sync_retry_calendar_{G}")
        assert job is not None
        assert isinstance(job.trigger, DateTrigger)
        assert job.func_ref == RETRY_JOB_FUNC
        assert job.kwargs == {"sync_type": "calendar", "group_id": G, "attempt": 1,
                              "previous_group_id": None}
        run_at = job.trigger.run_date
        assert before + timedelta(seconds=1 * SCALE) <= run_at
        assert run_at <= datetime.now(UTC) + timedelta(seconds=2 * SCALE)
        # When the service recovers, the job runs the key through the engine: the row is ok
        fakes.set(f"calendar:{G}", "ok")
        await wait_for(
            lambda: _status(session_factory, G), timeout=15, message="calendar row ok")
    assert [r["mode"] for r in fakes.runs("calendar", G)] == ["raise", "ok"]


async def _status(session_factory: SessionFactory, group_id: int) -> bool:
    state = await row(session_factory, "calendar", group_id)
    return state.status == SyncStatus.OK.value and state.attempt == 0


def test_schedule_sync_retry_adds_one_replaceable_job_with_plain_kwargs() -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)
    scheduler_module._scheduler = scheduler
    try:
        before = datetime.now(UTC)
        schedule_sync_retry("calendar", G, 2)
        schedule_sync_retry("calendar", G, 3)  # replaces: pending retries never stack
        jobs = scheduler.get_jobs()
        assert [j.id for j in jobs] == [f"sync_retry_calendar_{G}"]
        assert jobs[0].kwargs["attempt"] == 4
        # attempt 3: 8 s + jitter in [0, 1)
        assert before + timedelta(seconds=8) <= jobs[0].trigger.run_date
        assert jobs[0].trigger.run_date <= datetime.now(UTC) + timedelta(seconds=9)
        assert jobs[0].misfire_grace_time is None
    finally:
        scheduler.shutdown(wait=False)


async def test_a_retry_job_firing_with_no_runtime_here_hands_the_key_to_the_daemon(
    database_url: str, session_factory: SessionFactory, fakes: Fakes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start()
    scheduler_module._scheduler = scheduler
    try:
        schedule_sync_retry("rsvps", G, 0, retry_after=0.01)  # fires at once (scale 1: 1-2 s)
        await wait_for(lambda: _owed(session_factory), timeout=15, message="rsvps owed")
    finally:
        scheduler.shutdown(wait=False)
    assert fakes.runs() == []  # nothing ran here


async def _owed(session_factory: SessionFactory) -> bool:
    try:
        state = await row(session_factory, "rsvps", G)
    except AssertionError:
        return False
    return state.requested_generation > state.completed_generation
