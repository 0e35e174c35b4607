"""The engine's own cost per key run (issue 26): the outcome and the run's history row
commit together, and a run that lost its lease writes neither."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, func, select, update

from core.db.models import SyncAttempt, SyncState, SyncType
from core.db.session import SessionFactory, engine_of
from core.db.transactions import transactions_of
from core.engine.running import history, runner, state
from core.engine.running.outbox import mark_owed
from core.engine.running.outcomes import classify_result
from core.engine.running.state import SyncKey
from tests.engine.conftest import RuntimeMaker

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@contextmanager
def commits(sessions: SessionFactory) -> Iterator[list[str]]:
    """The commits, each named by the engine it went through: "aio" (the async driver's
    pool) or "hop" (the engine's one-hop transactions, ``core.db.transactions``)."""
    seen: list[str] = []
    engine = engine_of(sessions)
    # The "hop" engine last: on PostgreSQL it is the async engine's own, so it names them.
    engines = {engine.sync_engine: "aio", transactions_of(engine).statements_engine: "hop"}
    notes = {each: (lambda *_args, name=name: seen.append(name))
             for each, name in engines.items()}
    for each in engines:
        event.listen(each, "commit", notes[each])
    try:
        yield seen
    finally:
        for each in engines:
            event.remove(each, "commit", notes[each])


async def attempts(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int((await session.execute(
            select(func.count()).select_from(SyncAttempt))).scalar_one())


async def test_a_key_run_commits_its_claim_and_its_record_with_history(
    make_runtime: RuntimeMaker,
) -> None:
    # Given an owed key
    rt = await make_runtime()
    key = SyncKey(SyncType.DISCORD, 7)
    async with rt.session_factory() as session, session.begin():
        await mark_owed(session, [key.group_id], rt.clock.now(), [key.sync_type])

    # When it runs
    with commits(rt.session_factory) as seen:
        result = await runner.run_key(rt, key)

    # Then the claim and the outcome with its history row are two commits (main: three),
    # each one thread hop on SQLite: none went through aiosqlite, which hopped to its
    # thread and back for every cursor, execute, fetch and commit (issue 26)
    assert "error" not in result
    assert seen == ["hop", "hop"]
    assert await attempts(rt.session_factory) == 1
    assert not await state.is_owed(rt.session_factory, key)


async def test_a_lost_lease_writes_neither_outcome_nor_history(
    session_factory: SessionFactory,
) -> None:
    # Given a claimed key whose lease another process took over
    key = SyncKey(SyncType.DISCORD, 8)
    async with session_factory() as session, session.begin():
        await mark_owed(session, [key.group_id], NOW, [key.sync_type])
    claim = await state.claim(session_factory, key, "daemon:t:1:a", NOW, 45)
    assert claim is not None
    async with session_factory() as session, session.begin():
        await session.execute(update(SyncState).values(
            lease_owner="daemon:other:1:x", lease_expires_at=NOW + timedelta(hours=1)))

    # When the run records its success
    outcome = classify_result({})
    kept = await state.record_success(session_factory, claim, outcome, NOW,
                                      history.run_rows(claim, outcome, 1.0, NOW))

    # Then nothing is written: the key stays owed and its history is empty
    assert kept is False
    assert await state.is_owed(session_factory, key)
    assert await attempts(session_factory) == 0


async def test_a_hand_off_of_4000_keys_is_one_call(session_factory: SessionFactory) -> None:
    """Measured before: on PostgreSQL one upsert of 4,000 keys bound 36,000 parameters and
    asyncpg refused it (the protocol takes 32,767), so the whole hand-off failed."""
    async with session_factory() as session, session.begin():
        await mark_owed(session, range(1, 1001), NOW)
        await mark_owed(session, range(1, 1001), NOW, [SyncType.DISCORD])  # again: bumps
    async with session_factory() as session:
        owed = (await session.execute(
            select(func.count(), func.sum(SyncState.requested_generation))
            .where(state.owed()))).one()
    assert tuple(owed) == (4000, 5000)


async def test_a_claim_cancelled_as_it_commits_gives_its_lease_back(
    session_factory: SessionFactory,
) -> None:
    # Given an owed key, and a claim of it cancelled (a shutdown) while it runs: the
    # claim's transaction commits on its own (in its thread, on SQLite) all the same
    key = SyncKey(SyncType.DISCORD, 9)
    async with session_factory() as session, session.begin():
        await mark_owed(session, [key.group_id], NOW, [key.sync_type])
    claiming = asyncio.ensure_future(state.claim(session_factory, key, "daemon:t:1:a", NOW, 45))
    await asyncio.sleep(0)  # the claim is under way
    claiming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await claiming

    # Then no lease is left behind: the key is still owed, and free to claim at once
    assert claiming.cancelled()
    async with session_factory() as session:
        row = (await session.execute(select(SyncState.lease_owner, SyncState.status))).one()
    assert tuple(row) == (None, "pending")
    assert await state.is_owed(session_factory, key)
    assert await state.claim(session_factory, key, "daemon:t:2:b", NOW, 45) is not None
