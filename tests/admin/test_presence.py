"""The heartbeat: what one beat leaves in the database, and what it costs an idle daemon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.admin.presence import Presence, daemons
from core.clock import SystemClock
from core.db.models import DaemonHeartbeat, ServiceState
from core.db.session import create_engine, create_session_factory
from core.db.transactions import transactions_of


async def test_a_beat_writes_its_row_and_reads_the_requested_breaker_resets(
    engine: AsyncEngine, database_url: str,
) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(insert(ServiceState).values(
            service="discord", breaker_reset_requested_at=now, updated_at=now))
        # A daemon gone for over an hour: the first beat prunes its row.
        await connection.execute(insert(DaemonHeartbeat).values(
            id="gone", host="h", pid=1, role="active", since=now - timedelta(hours=3),
            last_heartbeat=now - timedelta(hours=2), clients=[]))

    # The beat's own engine, untouched by the setup above, to see what it was used for.
    own = create_engine(database_url, create_file=False)
    try:
        presence = Presence(create_session_factory(own), SystemClock(), "daemon-a",
                            transactions_of(own))
        requested = await presence.beat()
        first = (await daemons(create_session_factory(engine)))[0].last_heartbeat
        presence.become_active()
        await presence.beat()
        if own.dialect.name == "sqlite":
            # Issue 26: through aiosqlite a beat was nine thread hops, most of an idle
            # daemon's CPU; it now runs on the plain sqlite3 connection in one hop, so the
            # async engine never opened a connection.
            assert own.sync_engine.pool.checkedin() == 0
    finally:
        await own.dispose()

    assert requested == {"discord": now}
    rows = await daemons(create_session_factory(engine))
    assert [(r.id, r.role) for r in rows] == [("daemon-a", "active")]
    assert rows[0].last_heartbeat > first
