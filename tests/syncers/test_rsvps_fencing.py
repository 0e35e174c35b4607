"""The rsvps syncer writes its rows through the run's fence (DESIGN §3 Fencing)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from core.clock import SystemClock
from core.db.models import Rsvp, SyncState, SyncType
from core.engine.running import state
from core.engine.running.fencing import LeaseFence
from core.errors import LeaseLostError
from core.lanes import Lane
from core.syncers.base import SyncContext
from tests.world import World


async def _fence(world: World, group_id: int, *, taken_over: bool) -> LeaseFence:
    key = state.SyncKey(SyncType.RSVPS, group_id)
    claim = await state.claim(world.sessions, key, "us", datetime.now(UTC), 60.0)
    assert claim is not None
    if taken_over:
        async with world.sessions() as session, session.begin():
            await session.execute(
                update(SyncState)
                .where(SyncState.sync_type == "rsvps", SyncState.group_id == group_id)
                .values(lease_owner="them")
            )
    return LeaseFence(world.sessions, claim, SystemClock())


async def _rsvp_rows(world: World) -> int:
    async with world.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Rsvp)) or 0)


@pytest.mark.parametrize("lane", [Lane.INTERACTIVE, Lane.BACKGROUND])
async def test_rsvp_rows_are_written_only_while_the_lease_holds(
    world: World, lane: Lane
) -> None:
    group = await world.add_group(meetings=2)
    await world.join(await world.add_user(), group)

    lost = await _fence(world, group.id, taken_over=True)
    with pytest.raises(LeaseLostError):
        await world.syncers[SyncType.RSVPS].sync(
            group.id, SyncContext(lane=lane, now=datetime.now(UTC), fence=lost)
        )
    assert await _rsvp_rows(world) == 0

    async with world.sessions() as session, session.begin():  # give the lease back
        await session.execute(update(SyncState).values(lease_owner=None))
    held = await _fence(world, group.id, taken_over=False)
    result = await world.syncers[SyncType.RSVPS].sync(
        group.id, SyncContext(lane=lane, now=datetime.now(UTC), fence=held)
    )
    assert (result["added"], await _rsvp_rows(world)) == (2, 2)
