"""The one-hop transactions (``core.db.transactions``) when their engine is disposed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Update, select, update

from core.db.models import SyncState, SyncType
from core.db.session import create_engine, create_session_factory
from core.db.transactions import transactions_of
from core.engine.running.outbox import mark_owed

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
GROUP = 7


def set_attempt(value: int) -> Update:
    return update(SyncState).where(SyncState.group_id == GROUP).values(attempt=value)


async def test_disposing_the_engine_lets_a_waiting_transaction_finish_with_the_loop_running(
    database_url: str,
) -> None:
    if not database_url.startswith("sqlite"):
        # PostgreSQL's transactions are the async engine's own, and its dispose leaves a
        # connection checked out alone (SQLAlchemy's documented behaviour).
        pytest.skip("SQLite only: the one-hop worker thread is SQLite's")
    # Given a transaction waiting for a lock that an async-driver connection holds, and
    # gives up only when the event loop runs its commit (a fresh-clone CI worker hung at
    # shutdown: dispose blocked the loop, so that commit never came)
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session, session.begin():
        await mark_owed(session, [GROUP], NOW, [SyncType.DISCORD])
    elsewhere = create_engine(database_url)  # another pool: the lock's holder is no part of
    holder = await elsewhere.connect()      # what the disposed engine has checked out
    await holder.begin()
    await holder.execute(set_attempt(1))

    def second(connection: Connection) -> int:
        return connection.execute(set_attempt(2)).rowcount

    waiting = asyncio.ensure_future(transactions_of(engine).run(second))
    await asyncio.sleep(0.3)
    assert not waiting.done()

    async def commit_soon() -> None:
        await asyncio.sleep(0.3)
        await holder.commit()
        await holder.close()

    committing = asyncio.create_task(commit_soon())

    # When the engine is disposed meanwhile
    started = time.monotonic()
    await engine.dispose()
    disposed_after = time.monotonic() - started

    # Then the holder committed while dispose waited, and the waiting write landed after it
    await committing
    assert await waiting == 1
    assert disposed_after < 10.0, f"dispose held the loop for {disposed_after:.1f} s"
    async with create_session_factory(engine)() as session:
        attempt = (await session.execute(
            select(SyncState.attempt).where(SyncState.group_id == GROUP))).scalar_one()
    await engine.dispose()
    await elsewhere.dispose()
    assert attempt == 2
