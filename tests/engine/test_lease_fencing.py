"""A run holds its key only while its lease does: a failed renewal stops it before its
next external call, it records nothing, and the key stays owed. A new leader frees only
leases that expired by heartbeat."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from core.db.models import SyncState, SyncStatus, SyncType
from core.engine.loops.recovery import recover
from core.engine.running import runner, state
from core.engine.running.state import SyncKey
from core.group_joining import request_group_sync
from core.syncers.base import SyncContext, SyncResult
from tests.engine.conftest import RuntimeMaker, row
from tests.waiting import wait_for

G = 41
STEPS = 40


class SteppingSyncer:
    """A syncer making one "external call" every 50 ms, each after ``ensure_held()``,
    as every real syncer does before each call."""

    sync_type = SyncType.DISCORD

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        assert context.fence is not None
        for _ in range(STEPS):
            context.fence.ensure_held()
            self.calls.append(time.monotonic())
            await asyncio.sleep(0.05)
        return {"granted": STEPS, "revoked": 0, "unchanged": 0, "failed": 0}


async def _take_over(rt: Any, key: SyncKey) -> None:
    """Another process holds the key now (it found the lease expired and claimed it)."""
    async with rt.session_factory() as session, session.begin():
        await session.execute(
            update(SyncState)
            .where(SyncState.sync_type == key.sync_type, SyncState.group_id == key.group_id)
            .values(lease_owner="daemon:other:1:x",
                    lease_expires_at=rt.clock.now() + timedelta(hours=1))
        )


async def test_a_run_whose_renewal_fails_makes_no_further_external_call(
    make_runtime: RuntimeMaker,
) -> None:
    # Given a run in progress whose lease is renewed every 0.1 s
    rt = await make_runtime(lease_seconds=0.3)
    syncer = SteppingSyncer()
    rt.syncers = {**rt.syncers, SyncType.DISCORD: syncer}
    key = SyncKey(SyncType.DISCORD, G)
    async with rt.session_factory() as session, session.begin():
        await request_group_sync(session, G)
    run = asyncio.ensure_future(runner.run_key(rt, key, reason="test"))
    await wait_for(lambda: len(syncer.calls) >= 3, message="the run to be calling out")

    # When another process takes the key, so the next renewal is refused
    await _take_over(rt, key)
    taken_at = time.monotonic()
    result = await asyncio.wait_for(run, timeout=10)

    # Then the run stopped within one renewal interval and called out no more
    calls_at_end = len(syncer.calls)
    await asyncio.sleep(0.3)
    assert len(syncer.calls) == calls_at_end < STEPS
    assert max(syncer.calls) < taken_at + 0.1 + 0.05  # next renewal, plus one step in flight
    assert result.get("lease_lost") is True
    # And it recorded nothing: the new holder's lease stands and the key is still owed
    after = await row(rt.session_factory, "discord", G)
    assert after.lease_owner == "daemon:other:1:x"
    assert after.completed_generation < after.requested_generation
    assert (after.attempt, after.last_error) == (0, None)


async def test_a_lease_expired_before_the_outcome_is_written_records_nothing(
    make_runtime: RuntimeMaker,
) -> None:
    # Given a lease that lapsed (nobody renewed it) but nobody has claimed yet
    rt = await make_runtime()
    key = SyncKey(SyncType.CALENDAR, G)
    async with rt.session_factory() as session, session.begin():
        await request_group_sync(session, G)
    claim = await state.claim(rt.session_factory, key, "us", rt.clock.now(), 0.05)
    assert claim is not None
    await asyncio.sleep(0.1)

    # Then neither a renewal nor a record of the outcome is accepted
    assert not await state.renew(rt.session_factory, claim, rt.clock.now(), 30)
    outcome = runner.classify_result({"created": 1, "failed": 0})
    assert not await state.record_success(rt.session_factory, claim, outcome, rt.clock.now())
    after = await row(rt.session_factory, "calendar", G)
    assert after.completed_generation < after.requested_generation


async def test_takeover_frees_only_leases_expired_by_heartbeat(
    make_runtime: RuntimeMaker,
) -> None:
    # Given the previous leader's leases: one still renewed (its lock connection only
    # dropped), one it stopped renewing (it died)
    rt = await make_runtime(paused=True)
    assert rt.scheduler is not None
    now = rt.clock.now()
    async with rt.session_factory() as session, session.begin():
        await request_group_sync(session, 1)
        await session.execute(update(SyncState).where(SyncState.group_id == 1,
                              SyncState.sync_type == "discord").values(
            status="running", lease_owner="daemon:old:1:x",
            lease_expires_at=now + timedelta(seconds=20)))
        await session.execute(update(SyncState).where(SyncState.group_id == 1,
                              SyncState.sync_type == "calendar").values(
            status="running", lease_owner="daemon:old:1:x",
            lease_expires_at=now - timedelta(seconds=1)))

    # When a new leader recovers
    await recover(rt, rt.scheduler)

    # Then the live lease stands and the key does not run here; the expired one is free
    live = await row(rt.session_factory, "discord", 1)
    assert (live.lease_owner, live.status) == ("daemon:old:1:x", SyncStatus.RUNNING)
    freed = await row(rt.session_factory, "calendar", 1)
    assert (freed.lease_owner, freed.status) == (None, SyncStatus.PENDING)
    result = await runner.run_key(rt, SyncKey(SyncType.DISCORD, 1), reason="test")
    assert "skipped" in result
