"""The engine's records keep the needs-attention set (issue 23) in the statements they
already run: a needs-attention failure marks when the key entered the set (the first of a
streak of them), a success takes it out and clears an operator's acknowledgement, each
still one UPDATE."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.models import SyncState, SyncType
from core.db.session import SessionFactory
from core.db.transactions import transactions_of
from core.engine.running import state
from core.engine.running.outcomes import (
    Milestones,
    classify_exception,
    classify_result,
    decide_failure,
)
from core.engine.running.state import SyncKey
from core.errors import NeedsAttentionError, TransientError
from tests.admin.helpers import failing_keys, key_row

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
MILESTONES = Milestones(attempts=(10,), ages_seconds=(3600.0,))


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql.split()[0].upper())

    # The run's records go through the engine's one-hop transactions (a plain sqlite3
    # connection of their own on SQLite), the rest through the engine itself.
    engines = {engine.sync_engine, transactions_of(engine).statements_engine}
    for each in engines:
        event.listen(each, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        for each in engines:
            event.remove(each, "before_cursor_execute", note)


async def fail(sessions: SessionFactory, key: SyncKey, exc: Exception, now: datetime) -> None:
    claim = await state.claim(sessions, key, "daemon:t:1:a", now, 45)
    assert claim is not None
    outcome = classify_exception(exc)
    decision = decide_failure(claim.streak, outcome, now=now, backoff=1.0, time_scale=1.0,
                              milestones=MILESTONES)
    assert await state.record_failure(sessions, claim, outcome, decision, now)
    async with sessions() as session, session.begin():  # due again for the next claim
        await session.execute(update(SyncState).values(next_attempt_at=None))


async def test_failures_mark_the_set_and_one_success_statement_clears_the_acknowledgement(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    (group,) = await failing_keys(session_factory, 1)
    key = SyncKey(SyncType.DISCORD, group)
    missing = NeedsAttentionError("Missing Access", service="discord", status=403)
    await fail(session_factory, key, missing, NOW)
    await fail(session_factory, key, missing, NOW + timedelta(seconds=5))
    entered = (await key_row(session_factory, "discord", group)).attention_since
    await fail(session_factory, key, TransientError("503", service="discord"),
               NOW + timedelta(seconds=9))
    left = (await key_row(session_factory, "discord", group)).attention_since
    await fail(session_factory, key, missing, NOW + timedelta(seconds=12))
    async with session_factory() as session, session.begin():
        await session.execute(update(SyncState).values(
            ack_by="dashboard:127.0.0.1", ack_at=NOW, ack_note="on it"))

    claim = await state.claim(session_factory, key, "daemon:t:1:a", NOW, 45)
    assert claim is not None
    with statements(engine) as seen:
        assert await state.record_success(session_factory, claim, classify_result({}), NOW)
    row = await key_row(session_factory, "discord", group)

    assert entered == NOW  # the first of the streak, kept by the second
    assert left is None  # a transient failure is not "needs attention"
    assert [s for s in seen if s not in ("BEGIN", "COMMIT")] == ["UPDATE"]
    assert (row.status, row.attention_since, row.ack_by, row.ack_at, row.ack_note) == (
        "ok", None, None, None, None)
