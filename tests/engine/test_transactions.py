"""The one-hop transactions (``core.db.transactions``) when their engine is disposed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Update, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from core.db.models import SyncState, SyncType
from core.db.session import create_engine, create_session_factory
from core.db.transactions import transactions_of, with_session
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


async def sqlite_with_owed(database_url: str, groups: list[int]) -> AsyncEngine:
    """An engine on the SQLite test database, the groups' discord keys owed."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: the group commit is the one-hop worker's")
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session, session.begin():
        await mark_owed(session, groups, NOW, [SyncType.DISCORD])
    return engine


async def test_transactions_queued_together_share_one_commit_and_a_failing_one_lands_alone(
    database_url: str,
) -> None:
    # Given forty owed keys, and a count of the worker's commits (one fsync each: two per
    # run of a key was most of a no-op drain's time, issue 26)
    groups = list(range(1, 41))
    engine = await sqlite_with_owed(database_url, groups)
    transactions = transactions_of(engine)
    commits: list[int] = []
    event.listen(transactions.statements_engine, "commit", lambda _c: commits.append(1))

    def bump(group: int) -> Callable[[Connection], int]:
        def write(connection: Connection) -> int:
            return connection.execute(update(SyncState).where(
                SyncState.group_id == group).values(attempt=group)).rowcount
        return write

    def half_then_fail(connection: Connection) -> int:
        connection.execute(update(SyncState).where(SyncState.group_id == 13).values(
            attempt=-1))
        raise RuntimeError("this transaction fails after its first write")

    # When they are asked for at once, one of them failing after a write of its own
    work = [transactions.run(bump(g)) for g in groups if g != 13]
    outcomes = await asyncio.gather(*work, transactions.run(half_then_fail),
                                    return_exceptions=True)

    # Then each caller has its own answer, the failing one's write is rolled back alone,
    # every other write landed, and far fewer commits than transactions were made
    assert outcomes[:-1] == [1] * 39
    assert isinstance(outcomes[-1], RuntimeError)
    async with create_session_factory(engine)() as session:
        attempts = dict((await session.execute(
            select(SyncState.group_id, SyncState.attempt))).all())
    await engine.dispose()
    assert attempts == {g: (0 if g == 13 else g) for g in groups}
    assert 1 <= len(commits) <= 10, f"{len(commits)} commits for 40 transactions"


async def test_a_session_whose_flush_fails_mid_batch_fails_alone_and_the_rest_commit(
    database_url: str,
) -> None:
    # Given owed keys, and ORM work (as the internal syncers' Fence.run does) in a batch:
    # one of them, in the middle, adds a row its flush cannot insert (a duplicate key)
    groups = list(range(1, 21))
    engine = await sqlite_with_owed(database_url, groups)
    transactions = transactions_of(engine)

    def bump(group: int) -> Callable[[Session], int]:
        def write(session: Session) -> int:
            row = session.get(SyncState, (SyncType.DISCORD, group))
            assert row is not None
            row.attempt = group
            return group
        return write

    def duplicate(session: Session) -> int:
        bump(10)(session)
        session.add(SyncState(sync_type=SyncType.DISCORD, group_id=11))
        return 0

    # When they are asked for at once (the worker rolls the batch back, runs the rest again)
    work = [transactions.run(with_session(bump(g))) for g in groups if g != 10]
    outcomes = await asyncio.gather(*work[:9], transactions.run(with_session(duplicate)),
                                    *work[9:], return_exceptions=True)

    # Then only the duplicate failed, its other write rolled back with it; the rest landed
    assert isinstance(outcomes[9], IntegrityError)
    assert outcomes[:9] + outcomes[10:] == [g for g in groups if g != 10]
    async with create_session_factory(engine)() as session:
        attempts = dict((await session.execute(
            select(SyncState.group_id, SyncState.attempt))).all())
    await engine.dispose()
    assert attempts == {g: (0 if g == 10 else g) for g in groups}
