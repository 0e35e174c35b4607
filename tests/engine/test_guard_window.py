"""The deletion guard's window is rows: every daemon (and a restarted one) counts the same
removals, per sync type, for ten minutes (scaled), and a hold stores its plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from core.db.models import AppliedRemovals, HeldPlan
from core.db.session import SessionFactory
from core.engine.running.held import GuardStore
from core.syncers.guard import Check, Limits, Proposal

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
LIMITS = Limits(max_removals=10, max_share=0.5, max_per_window=20)


def leaving(n: int, start: int = 0) -> Proposal:
    removed = frozenset(f"u{i}" for i in range(start, start + n))
    return Proposal(removed, members=100, plan={"users_losing": {}}, fingerprint=f"f{start}")


async def test_two_daemons_share_one_window_per_sync_type(
    session_factory: SessionFactory,
) -> None:
    first, second = (GuardStore(session_factory, LIMITS, 600.0) for _ in range(2))
    assert (await first.check(Check("discord", 1, leaving(10), NOW))).go
    assert (await second.check(Check("discord", 2, leaving(10, 10), NOW))).go
    # The calendar counts on its own: the same members leaving is one removal of each type.
    assert (await second.check(Check("calendar", 1, leaving(10), NOW))).go
    held = await first.check(Check("discord", 3, leaving(1, 20), NOW))
    assert not held.go
    assert "to 21 (20 already, 1 here); limit 20" in held.reason
    async with session_factory() as session:
        row = await session.get(HeldPlan, ("discord", 3))
    assert row is not None
    assert (row.removals, row.plan["removed"], row.decision) == (1, ["u20"], "pending")


async def test_removals_older_than_the_window_are_pruned_and_no_longer_count(
    session_factory: SessionFactory,
) -> None:
    store = GuardStore(session_factory, LIMITS, 6.0)  # ten minutes at TIME_SCALE 0.01
    assert (await store.check(Check("discord", 1, leaving(20), NOW))).go
    assert not (await store.check(Check("discord", 2, leaving(1, 20), NOW))).go
    later = NOW + timedelta(seconds=7)
    # The window has room again, but the same held plan waits for a person (issue 23: a
    # re-check never lets a hold's removals through); another key's plan goes.
    again = await store.check(Check("discord", 2, leaving(1, 20), later))
    assert not again.go
    assert "to 21 (20 already, 1 here); limit 20" in again.reason
    assert (await store.check(Check("discord", 3, leaving(1, 30), later))).go
    async with session_factory() as session:
        counted = await session.scalar(select(func.sum(AppliedRemovals.removals)))
        held = await session.get(HeldPlan, ("discord", 2))
    assert counted == 1  # the old rows pruned: only the new key's removal counts
    assert held is not None
    assert held.decision == "pending"
