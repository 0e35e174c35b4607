"""Hand-off: in a process where no groupsync runtime runs, the public calls only mark the
keys owed and wake the daemon (DESIGN §2, mode a).

Marking owed is the outbox write (``mark_owed``); on PostgreSQL its transaction also
sends the NOTIFY that wakes the daemon at once, on SQLite the daemon notices the commit
on its next look (``core.engine.wakeup``). Nothing else is built: no clients, no
scheduler, no credentials read. A problem is one log line, never an exception: the
application's commit already happened, and whatever outbox rows it wrote stay owed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.pool import NullPool

from core.clock import SystemClock
from core.config import Settings, load_settings
from core.db.models import SyncType
from core.db.problems import describe_database_error
from core.db.session import create_engine, create_session_factory
from core.engine.outbox import mark_owed
from core.observability import get_logger

log = get_logger("groupsync.handoff")


async def hand_off(
    group_ids: Sequence[int],
    sync_types: Iterable[SyncType] = tuple(SyncType),
    *,
    settings: Settings | None = None,
    reason: str = "request",
) -> bool:
    """Mark the keys owed for the daemon. True when the write committed."""
    types = tuple(sync_types)
    fields = {"group_ids": list(group_ids), "sync_types": [t.value for t in types],
              "reason": reason}
    try:
        settings = settings or load_settings()
        # NullPool: one connection for this write, closed with it; nothing outlives the call
        # (the caller's loop may end right after, as with asyncio.run in a worker thread).
        engine = create_engine(settings.database_url, create_file=False, poolclass=NullPool)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                await mark_owed(session, group_ids, SystemClock().now(), types)
        finally:
            await engine.dispose()
    except Exception as exc:
        log.error("handoff_failed", error=describe_database_error(exc), **fields,
                  outcome="the daemon syncs whatever outbox rows the commit wrote")
        return False
    log.info("sync_handed_off", to="daemon", **fields)
    return True
