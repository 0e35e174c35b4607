"""The public contract around a membership change (DESIGN §2)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
import structlog

from core.db.models import SyncStatus
from core.db.session import create_engine, create_session_factory
from core.group_joining import request_group_sync, sync_after_group_change
from core.lifecycle import (
    sync_group,
    sync_group_calendar,
    sync_group_discord_permissions,
    sync_group_reminders,
    sync_group_rsvps,
)
from core.notifications.scheduler import schedule_sync_retry
from tests.engine.conftest import (
    ALL_TYPES,
    FAKE_FACTORY,
    Fakes,
    RuntimeMaker,
    row,
    status_of,
)
from tests.waiting import wait_for

OLD, NEW = 7, 8


async def test_every_key_of_the_old_and_the_new_group_runs_once_interactive(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    # The keys start in the documented order (old group first, discord … rsvps) but run
    # side by side, so the order they finish in is not part of the contract.
    await make_runtime()

    await sync_after_group_change(NEW, previous_group_id=OLD)

    ran = sorted((r["type"], r["group"]) for r in fakes.runs())
    assert ran == sorted([(t, OLD) for t in ALL_TYPES] + [(t, NEW) for t in ALL_TYPES])
    assert {r["lane"] for r in fakes.runs()} == {"interactive"}


async def test_an_exception_in_one_type_does_not_stop_the_others(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    fakes.set(f"discord:{NEW}", "crash")
    fakes.set(f"reminders:{NEW}", "raise")
    rt = await make_runtime(paused=True)

    await sync_after_group_change(NEW)  # does not raise

    assert sorted(r["type"] for r in fakes.runs()) == sorted(ALL_TYPES)
    statuses = {t: (await row(rt.session_factory, t, NEW)).status for t in ALL_TYPES}
    assert statuses == {"discord": "retrying", "calendar": "ok", "reminders": "retrying",
                        "rsvps": "ok"}
    assert (await row(rt.session_factory, "discord", NEW)).last_error == (
        "unexpected bug in a syncer")


async def test_each_public_sync_returns_its_result(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    await make_runtime()
    for function in (sync_group_discord_permissions, sync_group_calendar,
                     sync_group_reminders, sync_group_rsvps):
        assert (await function(NEW))["failed"] == 0
    assert [r["type"] for r in fakes.runs()] == ALL_TYPES


async def test_a_hundred_changes_in_a_second_cause_at_most_two_runs_per_type(
    make_runtime: RuntimeMaker, fakes: Fakes, database_url: str
) -> None:
    # Real time (scale 1). The property: a burst costs a leading run and one trailing run
    # per coalescing window it spans. The window is 3 s here (default 1 s) so that on a
    # quiet machine the hundred commits fit one window (at most two runs); a loaded
    # 2-CPU machine may take longer, and the bound then grows by the windows spanned.
    window = 3.0
    rt = await make_runtime(time_scale=1.0, coalesce_window_seconds=window)
    app_engine = create_engine(database_url)  # the application's own connection pool
    app_sessions = create_session_factory(app_engine)
    started = time.monotonic()

    tasks = []
    for _ in range(100):  # the application commits a hundred changes, each then synced
        async with app_sessions() as session, session.begin():
            await request_group_sync(session, NEW)
        tasks.append(asyncio.create_task(sync_after_group_change(NEW)))
    windows = math.ceil((time.monotonic() - started) / window)
    await asyncio.gather(*tasks)
    await app_engine.dispose()

    for sync_type in ALL_TYPES:
        assert 1 <= len(fakes.runs(sync_type, NEW)) <= 1 + windows, (sync_type, windows)
        state = await row(rt.session_factory, sync_type, NEW)
        assert state.completed_generation == state.requested_generation
        assert state.requested_generation >= 100  # the outbox saw every change


async def test_a_request_during_a_run_causes_exactly_one_more_run(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    fakes.set(f"discord:{NEW}", "ok", sleep=0.3)
    rt = await make_runtime()
    first = asyncio.create_task(sync_group_discord_permissions(NEW))

    async def running() -> bool:
        return await status_of(rt.session_factory, "discord", NEW) == SyncStatus.RUNNING

    await wait_for(running, message="the first run to start")
    # Five callers while it runs: they share one more run
    late = [asyncio.create_task(sync_group_discord_permissions(NEW)) for _ in range(5)]
    await asyncio.gather(first, *late)

    assert len(fakes.runs("discord", NEW)) == 2
    state = await row(rt.session_factory, "discord", NEW)
    assert state.completed_generation == state.requested_generation == 6
    assert state.status == SyncStatus.OK


async def test_a_run_completes_only_the_generation_it_started_from(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    fakes.set(f"calendar:{NEW}", "ok", sleep=0.3)
    rt = await make_runtime()
    run = asyncio.create_task(sync_group_calendar(NEW))

    async def running() -> bool:
        return await status_of(rt.session_factory, "calendar", NEW) == SyncStatus.RUNNING

    await wait_for(running, message="the run to start")
    async with rt.session_factory() as session, session.begin():
        await request_group_sync(session, NEW)  # another process's change, mid-run
    await run

    state = await row(rt.session_factory, "calendar", NEW)
    assert (state.completed_generation, state.requested_generation) == (1, 2)
    assert state.status == SyncStatus.PENDING  # still owed: the daemon's sweep runs it


async def test_a_key_leased_elsewhere_is_not_run(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from core.db.models import SyncState

    rt = await make_runtime()
    await sync_group_rsvps(NEW)
    async with rt.session_factory() as session, session.begin():
        await session.execute(update(SyncState).where(SyncState.sync_type == "rsvps").values(
            lease_owner="app:elsewhere:1:x",
            lease_expires_at=rt.clock.now() + timedelta(minutes=5)))

    result = await sync_group_rsvps(NEW)

    assert "skipped" in result
    assert len(fakes.runs("rsvps", NEW)) == 1

    # an expired lease is taken over
    async with rt.session_factory() as session, session.begin():
        await session.execute(update(SyncState).where(SyncState.sync_type == "rsvps").values(
            lease_expires_at=rt.clock.now() - timedelta(seconds=1)))
    assert (await sync_group_rsvps(NEW))["failed"] == 0
    assert len(fakes.runs("rsvps", NEW)) == 2


async def test_without_a_runtime_the_keys_are_handed_off_not_run(
    database_url: str, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no runtime in this process (hand-off mode, DESIGN §2): only DATABASE_URL is read
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SYNCER_FACTORY", FAKE_FACTORY)

    with structlog.testing.capture_logs() as logs:
        await sync_after_group_change(NEW)

    engine = create_engine(database_url)
    try:
        state = await row(create_session_factory(engine), "calendar", NEW)
    finally:
        await engine.dispose()
    assert (state.attempt, state.status) == (0, SyncStatus.PENDING)
    assert state.requested_generation > state.completed_generation  # owed, for the daemon
    assert [e["event"] for e in logs] == ["sync_handed_off"]
    assert fakes.runs() == []  # nothing ran in this process


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((0,), {}), ((-3,), {}), (("5",), {}), ((True,), {}), ((None,), {}), ((2.0,), {}),
     ((5,), {"previous_group_id": 0}), ((5,), {"previous_group_id": "4"})],
)
async def test_sync_after_group_change_rejects_bad_ids_at_once(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="must be a positive int"):
        await sync_after_group_change(*args, **kwargs)


@pytest.mark.parametrize("function", [sync_group_discord_permissions, sync_group_calendar,
                                      sync_group_reminders, sync_group_rsvps])
async def test_sync_group_functions_reject_bad_ids(function: Any) -> None:
    with pytest.raises(ValueError, match="group_id must be a positive int"):
        await function(0)


async def test_unknown_sync_type_is_refused_with_the_valid_ones() -> None:
    expected = "unknown sync type 'slack'; valid types: discord, calendar, reminders, rsvps"
    with pytest.raises(ValueError, match=expected):
        await sync_group("slack", 1)
    with pytest.raises(ValueError, match=expected):
        schedule_sync_retry("slack", 1, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [(("discord", 0, 0), "group_id"), (("discord", 1, -1), "attempt"),
     (("discord", 1, 0, "x"), "previous_group_id")],
)
def test_schedule_sync_retry_rejects_bad_arguments(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedule_sync_retry(*args)


def test_schedule_sync_retry_without_a_scheduler_warns_and_returns() -> None:
    with structlog.testing.capture_logs() as logs:
        schedule_sync_retry("discord", 3, 0)
    assert [e["event"] for e in logs] == ["retry_not_scheduled"]


async def test_schedule_sync_retry_arms_one_date_job_with_attempt_plus_one(
    make_runtime: RuntimeMaker,
) -> None:
    rt = await make_runtime(paused=True)
    assert rt.scheduler is not None
    before = rt.clock.now()

    schedule_sync_retry("calendar", 9, 2, previous_group_id=4)
    schedule_sync_retry("calendar", 9, 3, previous_group_id=4)  # replaces, never stacks

    (job,) = rt.scheduler.get_jobs()
    assert job.id == "sync_retry_calendar_9"
    assert job.kwargs == {"sync_type": "calendar", "group_id": 9, "attempt": 4,
                          "previous_group_id": 4}
    assert job.misfire_grace_time is None
    delay = (job.next_run_time - before).total_seconds()
    assert 8 * rt.time_scale.factor <= delay < 9 * rt.time_scale.factor + 0.5


async def test_a_new_change_keeps_a_failing_keys_backoff_streak_and_one_timer(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    # Given a key that fails on every run, with real-second delays and paused timers
    fakes.set(f"discord:{NEW}", "error")
    rt = await make_runtime(paused=True, time_scale=1.0)
    assert rt.scheduler is not None

    # When three changes each run it at once and it fails three times
    for _ in range(3):
        await sync_after_group_change(NEW)

    # Then each change ran it, and the one timer is the engine's (third failure: 4 s,
    # attempt 3), not the 1 s attempt-0 retry the orchestration asks for afterwards
    assert len(fakes.runs("discord", NEW)) == 3
    (job,) = [j for j in rt.scheduler.get_jobs() if j.id == f"sync_retry_discord_{NEW}"]
    state = await row(rt.session_factory, "discord", NEW)
    assert state.attempt == 3
    assert job.kwargs["attempt"] == 3
    assert (job.next_run_time - rt.clock.now()).total_seconds() > 3.0
