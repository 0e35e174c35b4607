"""How many external calls a run of a key will make, asked of its sync type's estimator
(``SyncTypeSpec.estimate``; the built-in ones are in ``core.syncers.estimates``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.lanes import Lane
from core.syncers import types
from core.syncers.snapshot_loader import load_snapshot
from core.syncers.spec import Estimate, EstimateInput

__all__ = ["Estimate", "estimate_key"]


async def estimate_key(
    session: AsyncSession, settings: Settings, sync_type: str, group_id: int,
    now: datetime, *, lane: Lane = Lane.INTERACTIVE, forget: bool = False,
) -> Estimate:
    spec = types.spec_of(sync_type)
    snapshot = await load_snapshot(session, group_id, now)
    return await spec.estimate(EstimateInput(session, settings, snapshot, now, lane, forget))
