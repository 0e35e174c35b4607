"""Attempt history: one row per finished run of a key, the newest ``KEEP_PER_KEY`` kept.

Written in the transaction of the run's own fenced record (``attempt_rows`` builds the
statements, ``state`` runs them only when the record matched): a run that lost its lease
leaves no row. ``record_attempt`` writes one on its own (admin tools, tests); losing a
history row must never fail or repeat a sync, so its errors are swallowed.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.sql import Executable

from core import metrics
from core.db.models import SyncAttempt
from core.db.session import SessionFactory, engine_of
from core.db.transactions import transactions_of
from core.engine.running.outcomes import Outcome
from core.engine.running.state import Claim, Statement, SyncKey, execute_all
from core.history.tally import TALLY

KEEP_PER_KEY = 50


def applied(outcome: Outcome) -> bool:
    """The run put the key's desired state in place (a held plan did not)."""
    return outcome.ok and not (outcome.result or {}).get("held")


def outcome_label(outcome: Outcome) -> str:
    return "ok" if outcome.ok else (outcome.error_kind or "failed")


def note_run(claim: Claim, outcome: Outcome, duration_ms: float, at: datetime) -> None:
    """A run finished and its record was kept: count it and time it (in memory; its
    history row went with the record)."""
    label = outcome_label(outcome)
    metrics.sync_finished(claim.key.sync_type, label, duration_ms / 1000)
    # The rollups count in memory (flushed once a minute), bucketed by the same ``at`` as
    # the attempt row: no statement of its own.
    TALLY.add("runs", f"{claim.key.sync_type}:{label}", at=at)
    if applied(outcome) and claim.requested_at is not None:
        TALLY.latency(max(0.0, (at - claim.requested_at).total_seconds() * 1000), at=at)


def run_rows(
    claim: Claim, outcome: Outcome, duration_ms: float, at: datetime
) -> Sequence[Statement]:
    """The history statements of one finished run, for its record's transaction."""
    return attempt_rows(
        claim.key, at=at, outcome=outcome_label(outcome), error=outcome.error,
        duration_ms=duration_ms, attempt=claim.streak.attempt,
    )


def attempt_rows(
    key: SyncKey,
    *,
    at: datetime,
    outcome: str,
    error: str | None,
    duration_ms: float,
    attempt: int,
    keep: int = KEEP_PER_KEY,
) -> Sequence[Statement]:
    same_key = {"p_type": key.sync_type, "p_group": key.group_id}
    return (
        (_INSERT, {"sync_type": key.sync_type, "group_id": key.group_id, "at": at,
                   "outcome": outcome, "error": (error or None) and error[:2000],
                   "duration_ms": duration_ms, "attempt": attempt}),
        (_prune(keep), same_key),
    )


# Built once (every run writes one row, so these are on the path of every interactive
# change, issue 26), Core on the table. The prune is one statement: the id of the newest
# row past the ``keep`` newest (NULL while there are fewer) bounds the delete.
_ATTEMPTS: Table = SyncAttempt.__table__  # type: ignore[assignment]
_INSERT = insert(_ATTEMPTS)


@functools.cache
def _prune(keep: int) -> Executable:
    same_key = (_ATTEMPTS.c.sync_type == bindparam("p_type"),
                _ATTEMPTS.c.group_id == bindparam("p_group"))
    cutoff = (
        select(_ATTEMPTS.c.id).where(*same_key)
        .order_by(_ATTEMPTS.c.id.desc()).offset(keep).limit(1)
        .scalar_subquery()
    )
    return delete(_ATTEMPTS).where(*same_key, _ATTEMPTS.c.id <= cutoff)


async def record_attempt(
    session_factory: SessionFactory,
    key: SyncKey,
    *,
    at: datetime,
    outcome: str,
    error: str | None,
    duration_ms: float,
    attempt: int,
    keep: int = KEEP_PER_KEY,
) -> None:
    statements = attempt_rows(key, at=at, outcome=outcome, error=error,
                              duration_ms=duration_ms, attempt=attempt, keep=keep)
    with contextlib.suppress(Exception):
        await transactions_of(engine_of(session_factory)).run(
            lambda connection: execute_all(connection, statements))
