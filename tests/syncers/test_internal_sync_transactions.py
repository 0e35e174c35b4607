"""The internal syncers (reminders, rsvps) read, plan and write in one fenced transaction
(issue 26): on SQLite one hop to the engine's one-hop worker, no statement through the
async driver, whose every call is a thread hop of its own.

Measured before: a no-op drain of all four sync types ran at 149 keys/s, 5.9 ms of CPU a
key, against 494 keys/s for the engine's own keys alone: a reminders run was a fenced
ORM transaction on aiosqlite (about eight hops a statement), an rsvps run two sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select

from core.clock import SystemClock
from core.db.models import ReminderDelivery, Rsvp, SyncType
from core.db.session import engine_of
from core.db.transactions import transactions_of
from core.engine.running import state
from core.engine.running.fencing import LeaseFence
from core.lanes import Lane
from core.syncers.base import SyncContext
from tests.world import World

MEMBERS = 3
MEETINGS = 2


@contextmanager
def counted(world: World) -> Iterator[dict[str, int]]:
    """Statements through the async driver, and commits of the one-hop worker."""
    engine = engine_of(world.sessions)
    worker = transactions_of(engine).statements_engine
    counts = {"async_statements": 0, "worker_commits": 0}

    def statement(*_args: Any) -> None:
        counts["async_statements"] += 1

    def commit(*_args: Any) -> None:
        counts["worker_commits"] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    event.listen(worker, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", statement)
        event.remove(worker, "commit", commit)


async def _count(world: World, model: Any) -> int:
    async with world.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("sync_type", [SyncType.REMINDERS, SyncType.RSVPS])
async def test_an_internal_sync_is_one_fenced_transaction_of_the_one_hop_worker(
    world: World, database_url: str, sync_type: SyncType
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL has no thread hop to save")
    # Given a group with members and upcoming meetings, and its key claimed by this run
    group = await world.add_group(meetings=MEETINGS)
    for _ in range(MEMBERS):
        await world.join(await world.add_user(), group)
    claim = await state.claim(world.sessions, state.SyncKey(sync_type, group.id), "us",
                              datetime.now(UTC), 60.0)
    assert claim is not None
    context = SyncContext(lane=Lane.INTERACTIVE, now=datetime.now(UTC),
                          fence=LeaseFence(world.sessions, claim, SystemClock()))

    # When the engine runs its sync
    with counted(world) as counts:
        result = await world.syncers[sync_type].sync(group.id, context)

    # Then its rows are written, in one commit of the worker, none through aiosqlite
    assert result["failed"] == 0
    if sync_type is SyncType.RSVPS:
        assert await _count(world, Rsvp) == MEMBERS * MEETINGS
    else:
        assert await _count(world, ReminderDelivery) == result["scheduled"] > 0
    assert counts == {"async_statements": 0, "worker_commits": 1}
