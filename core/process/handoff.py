"""Hand-off: in a process where no groupsync runtime runs, the public calls only mark the
keys owed and wake the daemon (DESIGN §2, mode a).

Marking owed is the outbox write (``mark_owed``); on PostgreSQL its transaction also
sends the NOTIFY that wakes the daemon at once, on SQLite the daemon notices the commit
on its next look (``core.engine.loops.wakeup``). Nothing else is built: no clients, no
scheduler, no credentials read. A problem is one log line, never an exception: the
application's commit already happened, and whatever outbox rows it wrote stay owed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar

from sqlalchemy.pool import NullPool

from core.clock import SystemClock
from core.config import Settings, load_settings
from core.db.models import SyncType
from core.db.problems import describe_database_error
from core.db.session import create_engine, create_session_factory
from core.engine.running.outbox import mark_owed
from core.observability import get_logger
from core.syncers import types as sync_type_registry

log = get_logger("groupsync.handoff")


class _Batch:
    """The keys handed off inside one ``one_write`` block, in the order they came."""

    def __init__(self) -> None:
        self.keys: dict[tuple[int, SyncType], None] = {}


_batch: ContextVar[_Batch | None] = ContextVar("groupsync_handoff_batch", default=None)


@asynccontextmanager
async def one_write(*, settings: Settings | None = None) -> AsyncIterator[None]:
    """Collect every hand-off made inside the block and write them in one transaction
    at its end: a membership change hands off up to eight keys, and one engine, one
    connection and one NOTIFY serve them all (the old group first, as they came)."""
    batch = _Batch()
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
    if batch.keys:
        await _write(list(batch.keys), settings=settings, reason="request")


async def hand_off(
    group_ids: Sequence[int],
    sync_types: Iterable[SyncType] | None = None,
    *,
    settings: Settings | None = None,
    reason: str = "request",
) -> bool:
    """Mark the keys owed for the daemon. True when the write committed, or, inside a
    ``one_write`` block, when the keys joined the block's write (which logs its outcome)."""
    if sync_types is None:
        sync_types = sync_type_registry.names()
    keys = [(group_id, sync_type) for group_id in group_ids for sync_type in sync_types]
    batch = _batch.get()
    if batch is not None:
        batch.keys.update(dict.fromkeys(keys))
        return True
    return await _write(keys, settings=settings, reason=reason)


async def _write(
    keys: Sequence[tuple[int, SyncType]], *, settings: Settings | None, reason: str
) -> bool:
    groups = list(dict.fromkeys(group_id for group_id, _ in keys))
    types = list(dict.fromkeys(sync_type for _, sync_type in keys))
    fields = {"group_ids": groups, "sync_types": [str(t) for t in types], "reason": reason}
    try:
        settings = settings or load_settings()
        # NullPool: one connection for this write, closed with it; nothing outlives the call
        # (the caller's loop may end right after, as with asyncio.run in a worker thread).
        engine = create_engine(settings.database_url, create_file=False, poolclass=NullPool)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                now = SystemClock().now()
                for group_ids, sync_types in _by_groups(keys).items():
                    await mark_owed(session, group_ids, now, sync_types)
        finally:
            await engine.dispose()
    except Exception as exc:
        log.error("handoff_failed", error=describe_database_error(exc), **fields,
                  outcome="the daemon syncs whatever outbox rows the commit wrote")
        return False
    log.info("sync_handed_off", to="daemon", **fields)
    return True


def _by_groups(keys: Sequence[tuple[int, SyncType]]) -> dict[tuple[int, ...], list[SyncType]]:
    """Types that share their groups share one statement (usually all of them do)."""
    groups_of: dict[SyncType, list[int]] = {}
    for group_id, sync_type in keys:
        groups_of.setdefault(sync_type, []).append(group_id)
    statements: dict[tuple[int, ...], list[SyncType]] = {}
    for sync_type, group_ids in groups_of.items():
        statements.setdefault(tuple(group_ids), []).append(sync_type)
    return statements
