"""Sentry once per failure streak (plus milestones), and re-arming owed retries from rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, update

from core.db.models import SyncState, SyncStatus
from core.engine.loops.recovery import OWED_RETRIES_JOB, recover
from core.engine.running.context import Runtime
from core.group_joining import request_group_sync
from core.lifecycle import sync_group
from core.notifications.scheduler import SyncScheduler
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

    # Then one timer stands for both, due at once (one is overdue), and the lease is freed
    jobs = {j.id: j for j in rt.scheduler.get_jobs()}
    assert count == 2
    assert set(jobs) == {OWED_RETRIES_JOB}
    assert jobs[OWED_RETRIES_JOB].next_run_time <= rt.clock.now()
    overdue = await row(rt.session_factory, "discord", 1)
    assert (overdue.attempt, overdue.status) == (5, SyncStatus.RETRYING)  # backoff not reset
    freed = await row(rt.session_factory, "rsvps", 2)
    assert (freed.lease_owner, freed.status) == (None, SyncStatus.PENDING)


async def _owed_retries(rt: Runtime, due: list[datetime]) -> None:
    """Rows a dead daemon left: one owed discord retry per group 1..n, attempt 3."""
    async with rt.session_factory() as session, session.begin():
        await session.execute(insert(SyncState), [
            {"sync_type": "discord", "group_id": g, "status": "retrying",
             "requested_generation": 1, "completed_generation": 0, "attempt": 3,
             "next_attempt_at": at, "sentry_reported_level": 1, "updated_at": at}
            for g, at in enumerate(due, start=1)
        ])


async def test_rearming_many_owed_retries_arms_one_timer_not_one_per_key(
    make_runtime: RuntimeMaker,
) -> None:
    # Given 300 owed retries due over the next hour
    rt = await make_runtime(paused=True)
    assert isinstance(rt.scheduler, SyncScheduler)
    now = rt.clock.now()
    await _owed_retries(rt, [now + timedelta(seconds=60 + i) for i in range(300)])

    # When a daemon re-arms them
    count = await recover(rt, rt.scheduler)

    # Then one timer stands for all of them, due at the earliest
    assert count == 300
    (job,) = rt.scheduler.get_jobs()
    assert (job.id, job.next_run_time) == (OWED_RETRIES_JOB, now + timedelta(seconds=60))


async def test_the_one_timer_runs_overdue_retries_at_once_and_a_later_one_at_its_time(
    make_runtime: RuntimeMaker, fakes: Fakes,
) -> None:
    # Given 20 overdue owed retries and one due 0.4 s from now (a row's time is absolute)
    rt = await make_runtime()
    assert isinstance(rt.scheduler, SyncScheduler)
    now = rt.clock.now()
    later = now + timedelta(seconds=0.4)
    await _owed_retries(rt, [now - timedelta(seconds=i) for i in range(1, 21)] + [later])

    # When a daemon re-arms them
    await recover(rt, rt.scheduler)

    # Then every one runs, once, with the attempt count it had
    async def all_ok() -> bool:
        return all([(await row(rt.session_factory, "discord", g)).status == SyncStatus.OK
                    for g in range(1, 22)])

    await wait_for(all_ok, message="every re-armed retry ran")
    runs = fakes.runs("discord")
    assert sorted(r["group"] for r in runs) == list(range(1, 22))
    assert {r["attempt"] for r in runs} == {3}
    # and the later one not before its due time
    (late,) = fakes.runs("discord", 21)
    assert late["start"] >= later.timestamp()
    assert rt.scheduler.get_jobs() == []  # nothing owed is left to wait for
