"""Whether a group id names anything: a group row, or sync keys a deleted group left
behind (those may still be run, to converge it to empty). Every verb that takes a group
id asks this first, so an unknown id is refused with one line instead of reporting on,
or creating keys for, nothing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Group, SyncState
from core.errors import UnknownGroupError


async def unknown_groups(session: AsyncSession, group_ids: Iterable[int]) -> list[int]:
    """The ids among ``group_ids`` with neither a group row nor a sync key, in order."""
    wanted = sorted(set(group_ids))
    if not wanted:
        return []
    groups = set((await session.scalars(select(Group.id).where(Group.id.in_(wanted)))).all())
    keyed = set((await session.scalars(
        select(SyncState.group_id).where(SyncState.group_id.in_(wanted)).distinct())).all())
    return [g for g in wanted if g not in groups and g not in keyed]


async def require_known_groups(session: AsyncSession, group_ids: Iterable[int]) -> None:
    """Raise ``UnknownGroupError`` for the first id that names nothing."""
    unknown = await unknown_groups(session, group_ids)
    if unknown:
        raise UnknownGroupError(unknown[0])
