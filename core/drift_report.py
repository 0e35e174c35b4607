"""The ``drift`` verb: read the live services for some (or every) group and list what
differs from our delivery records and the desired state. ``--dry-run`` changes nothing;
without it the keys are marked owed, and the daemon's syncs repair and log each item."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import asdict
from typing import Protocol, TextIO, runtime_checkable

from sqlalchemy import select

from core.clock import SystemClock, TimeScale
from core.config import Settings
from core.db.groups import require_known_groups
from core.db.models import Group
from core.db.session import SessionFactory, create_engine, create_session_factory
from core.engine.loops.drift_sweep import swept_types
from core.engine.running.outbox import mark_owed
from core.lanes import Lane
from core.runtime import SyncerDeps
from core.syncers.base import SyncContext
from core.syncers.drift import DriftItem
from core.syncers.registry import build_syncers
from core.syncers.types import service_of


@runtime_checkable
class DriftReader(Protocol):
    """A syncer that can report drift without repairing it (discord, calendar)."""

    async def drift(self, group_id: int, context: SyncContext) -> list[DriftItem]: ...


async def find_drift(
    settings: Settings, sessions: SessionFactory, group_ids: list[int]
) -> list[DriftItem]:
    clock = SystemClock()
    items: list[DriftItem] = []
    async with AsyncExitStack() as stack:
        deps = SyncerDeps(settings, sessions, clock, TimeScale(settings.time_scale), stack)
        syncers = await build_syncers(deps)
        for group_id in group_ids:
            for sync_type in swept_types(settings):
                reader = syncers[sync_type]
                if isinstance(reader, DriftReader):
                    context = SyncContext(lane=Lane.BACKGROUND, now=clock.now())
                    items.extend(await reader.drift(group_id, context))
    return items


async def active_groups(sessions: SessionFactory) -> list[int]:
    async with sessions() as session:
        rows = await session.execute(
            select(Group.id).where(Group.archived.is_(False)).order_by(Group.id)
        )
        return list(rows.scalars())


def render(item: DriftItem) -> str:
    return (
        f"group {item.group_id} {item.service}: {item.subject}: {item.found} "
        f"-> {item.done}"
    )


async def run_drift(
    settings: Settings, group_ids: list[int] | None, dry_run: bool, as_json: bool, out: TextIO
) -> int:
    import json

    engine = create_engine(settings.database_url)
    try:
        sessions = create_session_factory(engine)
        if group_ids:
            async with sessions() as session:
                await require_known_groups(session, group_ids)  # one line naming the id
        ids = group_ids or await active_groups(sessions)
        items = await find_drift(settings, sessions, ids)
        if as_json:
            out.write(json.dumps([asdict(i) for i in items], indent=2) + "\n")
        else:
            for item in items:
                out.write(render(item) + "\n")
            out.write(f"{len(items)} drift item(s) in {len(ids)} group(s)\n")
        repairable = [i for i in items if i.repairable]
        if not dry_run and repairable:
            owed = sorted({i.group_id for i in repairable})
            found = {i.service for i in repairable}
            types = [t for t in swept_types(settings) if service_of(t) in found]
            async with sessions() as session, session.begin():
                await mark_owed(session, owed, SystemClock().now(), types)
            if not as_json:
                out.write(f"{len(owed)} group(s) marked owed: the daemon repairs and logs each\n")
        return 0
    finally:
        await engine.dispose()
