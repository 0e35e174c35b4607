"""Delivery records of the discord and calendar syncers are written through the run's
fence: a run whose lease was taken over records nothing and stops calling out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from core.clock import SystemClock
from core.db.models import SyncState, SyncType
from core.engine.running import state
from core.engine.running.fencing import LeaseFence
from core.errors import LeaseLostError
from core.lanes import Lane
from core.syncers.base import SyncContext
from tests.world import World


async def _fence_taken_over(world: World, sync_type: SyncType, group_id: int) -> LeaseFence:
    """A claim by "us" whose lease another process has since taken."""
    key = state.SyncKey(sync_type, group_id)
    claim = await state.claim(world.sessions, key, "us", datetime.now(UTC), 60.0)
    assert claim is not None
    async with world.sessions() as session, session.begin():
        await session.execute(
            update(SyncState)
            .where(SyncState.sync_type == sync_type, SyncState.group_id == group_id)
            .values(lease_owner="them")
        )
    return LeaseFence(world.sessions, claim, SystemClock())


@pytest.mark.parametrize("sync_type", [SyncType.DISCORD, SyncType.CALENDAR])
async def test_a_run_that_lost_its_lease_records_nothing(world: World, sync_type: SyncType) -> None:
    group = await world.add_group(meetings=2)
    for _ in range(2):
        await world.join(await world.add_user(), group)
    fence = await _fence_taken_over(world, sync_type, group.id)
    context = SyncContext(lane=Lane.INTERACTIVE, now=datetime.now(UTC), fence=fence)

    with pytest.raises(LeaseLostError):
        await world.syncers[sync_type].sync(group.id, context)

    assert await world.grants(group.id) == set()
    assert await world.event_records(group.id) == []
    writes = [r for r, n in world.calls().items() for _ in range(n) if not r.startswith("GET")]
    assert len(writes) <= 1  # it stopped before its next external call
