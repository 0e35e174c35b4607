"""Sentry once per failure streak (plus milestones), and re-arming owed retries from rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from core.db.models import SyncState, SyncStatus
from core.engine.loops.recovery import recover
from core.group_joining import request_group_sync
from core.lifecycle import sync_group
from tests.engine.conftest import Fakes, RuntimeMaker, row
from tests.waiting import wait_for

G = 51


async def test_sentry_hears_once_per_streak_and_at_attempt_milestones(
    make_runtime: RuntimeMaker, fakes: Fakes, sentry_events: list[dict[str, Any]]
) -> None:
    fakes.set(f"discord:{G}", "raise")
    rt = await make_runtime(sentry_attempt_milestones="3,10",
                            sentry_age_milestones_seconds="1000000")
    await sync_group("discord", G)

    async def attempts(n: int) -> bool:
        return (await row(rt.session_factory, "discord", G)).attempt >= n

    await wait_for(lambda: attempts(12), message="twelve failures")
    fakes.set(f"discord:{G}", "ok")

    async def ok() -> bool:
        return (await row(rt.session_factory, "discord", G)).status == SyncStatus.OK

    await wait_for(ok, message="recovery")

    # first failure, 3rd attempt, 10th attempt: three events for twelve failures
    assert len(sentry_events) == 3
    assert all(e["tags"]["sync_type"] == "discord" for e in sentry_events)
    assert all(e["tags"]["group_id"] == str(G) for e in sentry_events)
    assert sentry_events[0]["exception"]["values"][0]["value"] == "fake upstream 503"

    # a new streak is reported again, once (timers paused: two failures, by hand)
    assert rt.scheduler is not None
    rt.scheduler.pause()
    fakes.set(f"discord:{G}", "error")
    await sync_group("discord", G)
    await sync_group("discord", G)
    assert (await row(rt.session_factory, "discord", G)).attempt == 2
    assert len(sentry_events) == 4
    assert "fake says no" in sentry_events[3]["message"]


async def test_sentry_hears_again_when_a_streak_passes_an_age_milestone(
    make_runtime: RuntimeMaker, fakes: Fakes, sentry_events: list[dict[str, Any]]
) -> None:
    # 200 s scaled by 0.001 = 0.2 s; ten failures take at least 0.243 s of backoff
    fakes.set(f"rsvps:{G}", "raise")
    rt = await make_runtime(sentry_attempt_milestones="1000", sentry_age_milestones_seconds="200")
    await sync_group("rsvps", G)

    async def ten() -> bool:
        return (await row(rt.session_factory, "rsvps", G)).attempt >= 10

    await wait_for(ten, message="ten failures")
    assert len(sentry_events) == 2


async def test_recovery_rearms_owed_retries_from_the_rows(
    make_runtime: RuntimeMaker,
) -> None:
    # Given rows a dead daemon left: one overdue, one due later, one mid-run (lease expired)
    rt = await make_runtime(paused=True)
    assert rt.scheduler is not None
    now = rt.clock.now()
    async with rt.session_factory() as session, session.begin():
        await request_group_sync(session, 1)
        await request_group_sync(session, 2)
        await session.execute(update(SyncState).where(SyncState.group_id == 1,
                              SyncState.sync_type == "discord").values(
            attempt=5, status="retrying", next_attempt_at=now - timedelta(minutes=3)))
        await session.execute(update(SyncState).where(SyncState.group_id == 2,
                              SyncState.sync_type == "calendar").values(
            attempt=8, status="retrying", next_attempt_at=now + timedelta(minutes=1)))
        await session.execute(update(SyncState).where(SyncState.group_id == 2,
                              SyncState.sync_type == "rsvps").values(
            status="running", lease_owner="daemon:old:1:x",
            lease_expires_at=now - timedelta(seconds=1)))  # its renewals stopped

    count = await recover(rt, rt.scheduler)

    jobs = {j.id: j for j in rt.scheduler.get_jobs()}
    assert count == 2
    assert set(jobs) == {"sync_retry_discord_1", "sync_retry_calendar_2"}
    assert jobs["sync_retry_discord_1"].kwargs["attempt"] == 5
    assert jobs["sync_retry_discord_1"].next_run_time <= rt.clock.now()  # overdue: at once
    assert jobs["sync_retry_calendar_2"].kwargs["attempt"] == 8
    assert jobs["sync_retry_calendar_2"].next_run_time == now + timedelta(minutes=1)
    freed = await row(rt.session_factory, "rsvps", 2)
    assert (freed.lease_owner, freed.status) == (None, SyncStatus.PENDING)
