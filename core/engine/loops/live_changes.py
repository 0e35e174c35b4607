"""A person's change seen live (Calendar incremental sync, the Discord gateway): the keys
it concerns are owed and run at once in the background lane, reason ``live_change``, one
log line per group naming what was found (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import SyncState, SyncStatus, SyncType
from core.engine.running import runner
from core.engine.running.state import SyncKey
from core.lanes import Lane
from core.observability import get_logger

if TYPE_CHECKING:
    from core.engine.running.context import Runtime

log = get_logger("groupsync.live_changes")
LIVE_CHANGE = "live_change"  # the reason a repair's run is recorded with


async def not_already_owed(
    session: AsyncSession, sync_type: SyncType, group_ids: Iterable[int], *,
    running_too: bool = False,
) -> list[int]:
    """A key owed already (a membership change on its way) will read and repair anyway;
    its in-between state is no person's change. ``running_too``: a key whose run is in
    flight is owed once more all the same, since that run may have read before the change."""
    wanted = sorted(set(group_ids))
    if not wanted:
        return []
    query = select(SyncState.group_id).where(
        SyncState.sync_type == sync_type, SyncState.group_id.in_(wanted),
        SyncState.requested_generation > SyncState.completed_generation)
    if running_too:
        query = query.where(SyncState.status != SyncStatus.RUNNING.value)
    owed = set(await session.scalars(query))
    return [g for g in wanted if g not in owed]


async def run_repairs(
    rt: Runtime, sync_type: SyncType, repairs: Mapping[int, list[str]], event: str,
    **fields: object,
) -> None:
    """Keys already marked owed: say what each group's change was, then run them."""
    for group_id, found in repairs.items():
        log.info(event, group_id=group_id, found="; ".join(found), **fields)
    for group_id in repairs:
        await runner.run_key(rt, SyncKey(sync_type, group_id), lane=Lane.BACKGROUND,
                             reason=LIVE_CHANGE)
