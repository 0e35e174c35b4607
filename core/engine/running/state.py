"""The sync-state rows as a small repository: claim a lease, renew it, record the outcome.

Every write is one short transaction of its own (an outcome's carries the run's history
row with it), and every write after the claim is fenced in its own statement: it matches
only while ``lease_owner`` is this run and the lease has not expired, so a process whose
lease lapsed (and may have been taken over) cannot overwrite anyone's record nor extend a
lease it no longer holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import ColumnElement

from core.db.models import SyncState, SyncStatus, SyncType
from core.db.session import SessionFactory, engine_of
from core.db.transactions import transactions_of
from core.engine.health.outage import is_database_unavailable
from core.engine.running.outcomes import (
    NEEDS_ATTENTION_KINDS,
    FailureDecision,
    Outcome,
    StreakSoFar,
)


@dataclass(frozen=True, order=True)
class SyncKey:
    sync_type: SyncType
    group_id: int

    @property
    def job_id(self) -> str:
        return f"sync_retry_{self.sync_type}_{self.group_id}"


@dataclass(frozen=True)
class Claim:
    """A lease on one key: the run completes exactly ``generation``."""

    key: SyncKey
    owner: str
    generation: int
    streak: StreakSoFar
    requested_at: datetime | None = None  # the oldest request this run applies
    # The deletion guard's words when the key was held at the claim: this run is its
    # re-check (``recheck``: it came due on the hold's timer) or a new request's plan.
    held: str | None = None
    recheck: bool = False


def _key(key: SyncKey) -> ColumnElement[bool]:
    return and_(SyncState.sync_type == key.sync_type, SyncState.group_id == key.group_id)


def owed() -> ColumnElement[bool]:
    return SyncState.requested_generation > SyncState.completed_generation


def lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(SyncState.lease_owner.is_(None), SyncState.lease_expires_at < now)


HELD_KIND = "held"
# What a run's record writes beside its outcome for the needs-attention set: one more
# column or four in the UPDATE it runs anyway, never a statement of its own.
LEAVES_ATTENTION: dict[str, Any] = {"attention_since": None}
CLEARS_ACK: dict[str, Any] = {"ack_by": None, "ack_at": None, "ack_note": None}


# A history statement in a record's transaction: built per run, or built once and run
# with its parameters.
Statement = Executable | tuple[Executable, dict[str, Any]]

# The two statements every run makes, built once: constructing a SQLAlchemy statement
# (and its cache key) per run was most of the engine's CPU per key (issue 26). Core on the
# table, not the ORM entity: no ORM bulk-update machinery on the hot path.
_ROWS: Table = SyncState.__table__  # type: ignore[assignment]
_NOW = bindparam("p_now", type_=_ROWS.c.updated_at.type)
_GENERATION = bindparam("p_generation", type_=Integer)
_NEWER_REQUEST = _ROWS.c.requested_generation > _GENERATION
_CLAIM = (
    update(_ROWS)
    .where(_ROWS.c.sync_type == bindparam("f_type"), _ROWS.c.group_id == bindparam("f_group"),
           _ROWS.c.requested_generation > _ROWS.c.completed_generation,
           or_(_ROWS.c.lease_owner.is_(None), _ROWS.c.lease_expires_at < _NOW))
    .values(lease_owner=bindparam("p_owner"),
            lease_expires_at=bindparam("p_until", type_=_ROWS.c.lease_expires_at.type),
            status=SyncStatus.RUNNING.value, last_attempt_at=_NOW, updated_at=_NOW)
    .returning(_ROWS.c.requested_generation, _ROWS.c.attempt, _ROWS.c.failing_since,
               _ROWS.c.sentry_reported_level, _ROWS.c.requested_at,
               # The claim leaves these as they were: "held" for a held key, and its due
               # time (a re-check; a new request cleared it).
               _ROWS.c.error_kind, _ROWS.c.last_error, _ROWS.c.next_attempt_at)
)
_FENCE = and_(
    _ROWS.c.sync_type == bindparam("f_type"), _ROWS.c.group_id == bindparam("f_group"),
    _ROWS.c.lease_owner == bindparam("f_owner"),
    _ROWS.c.lease_expires_at > bindparam("f_at", type_=_ROWS.c.lease_expires_at.type),
)
_SUCCESS = update(_ROWS).where(_FENCE).values(
    completed_generation=_GENERATION,
    status=case((_NEWER_REQUEST, SyncStatus.PENDING.value), else_=SyncStatus.OK.value),
    attempt=0, next_attempt_at=None, last_error=None, error_kind=None, failing_since=None,
    sentry_reported_level=0, last_success_at=_NOW,
    last_result=bindparam("p_result", type_=_ROWS.c.last_result.type),
    # Applied: nothing owed, unless a request came during the run (timed from the run's
    # claim, which it followed: an upper bound).
    requested_at=case((_NEWER_REQUEST, _ROWS.c.last_attempt_at), else_=None),
    lease_owner=None, lease_expires_at=None, updated_at=_NOW,
    # Out of the needs-attention set: an operator's acknowledgement ends with it.
    **LEAVES_ATTENTION, **CLEARS_ACK,
)


# The first statement of a fenced transaction: it matches only while the claim holds the
# lease, and on PostgreSQL row-locks the key until the commit (DESIGN §3 Fencing).
_REASSERT = update(_ROWS).where(_FENCE).values(lease_owner=bindparam("f_owner"))


def lease_reasserted(connection: Connection, claim_: Claim, held_at: datetime) -> bool:
    """Re-asserts ``claim_``'s lease at ``held_at`` in the connection's transaction."""
    return bool(connection.execute(_REASSERT, _fence_params(claim_, held_at)).rowcount)


def _fence_params(claim_: Claim, held_at: datetime) -> dict[str, Any]:
    return {"f_type": claim_.key.sync_type, "f_group": claim_.key.group_id,
            "f_owner": claim_.owner, "f_at": held_at}


def _status_when_idle() -> Any:
    """Status of an owed key nobody is running: it keeps what its streak says."""
    return case(
        (SyncState.attempt == 0, SyncStatus.PENDING.value),
        (SyncState.error_kind.in_(NEEDS_ATTENTION_KINDS), SyncStatus.NEEDS_ATTENTION.value),
        else_=SyncStatus.RETRYING.value,
    )


# A claim its caller no longer wants (cancelled as it committed): the lease goes back,
# and the key, still owed, has the status its streak says (as ``release`` leaves it).
_GIVE_BACK = update(_ROWS).where(
    _ROWS.c.sync_type == bindparam("f_type"), _ROWS.c.group_id == bindparam("f_group"),
    _ROWS.c.lease_owner == bindparam("f_owner"),
).values(status=_status_when_idle(), lease_owner=None, lease_expires_at=None)


async def claim(
    session_factory: SessionFactory, key: SyncKey, owner: str, now: datetime, lease_seconds: float
) -> Claim | None:
    """Take the lease if the key is owed and nobody holds a live lease on it."""
    params = {"f_type": key.sync_type, "f_group": key.group_id, "p_owner": owner,
              "p_now": now, "p_until": now + timedelta(seconds=lease_seconds)}
    transactions = transactions_of(engine_of(session_factory))
    taking = asyncio.ensure_future(transactions.run(
        lambda connection: connection.execute(_CLAIM, params).first()))
    try:
        row = await asyncio.shield(taking)
    except asyncio.CancelledError:
        # Cancelled (shutdown) while the claim ran: it may still commit. Give its lease
        # back rather than leave the key to wait for the lease to expire.
        with contextlib.suppress(Exception):
            if await taking is not None:
                await transactions.run(lambda connection: connection.execute(
                    _GIVE_BACK, {"f_type": key.sync_type, "f_group": key.group_id,
                                 "f_owner": owner}))
        raise
    if row is None:
        return None
    generation, attempt, failing_since, level, requested_at, kind, words, due = row
    held = (words or "held by the deletion guard") if kind == HELD_KIND else None
    return Claim(key, owner, generation, StreakSoFar(attempt, failing_since, level),
                 requested_at, held=held, recheck=held is not None and due is not None)


async def renew(
    session_factory: SessionFactory, claim_: Claim, now: datetime, lease_seconds: float
) -> bool:
    """Extend a lease still held; False once it expired or passed to someone else."""
    return await _fenced(
        session_factory, claim_, now, (), lease_expires_at=now + timedelta(seconds=lease_seconds)
    )


async def record_success(
    session_factory: SessionFactory, claim_: Claim, outcome: Outcome, now: datetime,
    history: Sequence[Statement] = (),
) -> bool:
    """Complete the generation the run started from; a newer request leaves it pending.
    The most frequent record of all: one statement built once (``_SUCCESS``)."""
    return await _fenced_statement(session_factory, _SUCCESS, {
        **_fence_params(claim_, now), "p_generation": claim_.generation, "p_now": now,
        "p_result": outcome.result,
    }, history)


async def record_failure(
    session_factory: SessionFactory,
    claim_: Claim,
    outcome: Outcome,
    decision: FailureDecision,
    now: datetime,
    history: Sequence[Statement] = (),
) -> bool:
    return await _fenced(
        session_factory,
        claim_,
        now,
        history,
        status=decision.status.value,
        attempt=decision.attempt,
        next_attempt_at=decision.next_attempt_at,
        last_error=(outcome.error or "")[:4000],
        error_kind=outcome.error_kind,
        failing_since=decision.failing_since,
        sentry_reported_level=decision.sentry_level,
        last_result=outcome.result,
        lease_owner=None,
        lease_expires_at=None,
        updated_at=now,
        # In the needs-attention set since the first of a run of such failures; a
        # transient failure takes it out (the acknowledgement stays until a success).
        attention_since=(func.coalesce(SyncState.attention_since, now)
                         if decision.status is SyncStatus.NEEDS_ATTENTION else None),
    )


async def record_held(
    session_factory: SessionFactory, claim_: Claim, reason: str, now: datetime,
    recheck_at: datetime, history: Sequence[Statement] = (), result: Any = None,
) -> bool:
    """The guard held the run's plan (or a held key's re-check could not re-plan): the
    generation stays owed, and the next run is the re-check at ``recheck_at`` (its own
    timer; the sweep leaves held keys alone). A request that arrived meanwhile leaves it
    pending (it re-plans at once)."""
    values: dict[str, Any] = {} if result is None else {"last_result": result}
    return await _fenced(
        session_factory,
        claim_,
        now,
        history,
        status=case(
            (SyncState.requested_generation > claim_.generation, SyncStatus.PENDING.value),
            else_=SyncStatus.HELD.value,
        ),
        attempt=0,
        next_attempt_at=recheck_at,
        last_error=reason[:4000],
        error_kind=HELD_KIND,
        failing_since=None,
        sentry_reported_level=0,
        **values,
        lease_owner=None,
        lease_expires_at=None,
        updated_at=now,
        **LEAVES_ATTENTION,  # the held view has it now
    )


async def release(
    session_factory: SessionFactory, claim_: Claim, now: datetime,
    history: Sequence[Statement] = (),
) -> bool:
    """Give the lease back without completing anything (shutdown): the key stays owed.
    Matches on the owner only: giving back an expired lease of ours is harmless."""
    return await _fenced(
        session_factory,
        claim_,
        None,
        history,
        status=_status_when_idle(),
        lease_owner=None,
        lease_expires_at=None,
        updated_at=now,
    )


async def _fenced(
    session_factory: SessionFactory,
    claim_: Claim,
    held_at: datetime | None,
    history: Sequence[Statement],
    **values: Any,
) -> bool:
    """One UPDATE that matches only while ``claim_`` holds the lease (at ``held_at``), and,
    only when it matched, the run's ``history`` statements in the same transaction: one
    commit per record. A lost lease writes neither. Losing a history row must never fail
    or repeat a sync: if the history statements fail, the record is written alone."""
    held = [_key(claim_.key), SyncState.lease_owner == claim_.owner]
    if held_at is not None:
        held.append(SyncState.lease_expires_at > held_at)
    stmt = update(SyncState).where(*held).values(**values)
    return await _fenced_statement(session_factory, stmt, {}, history)


def execute_all(connection: Connection, statements: Sequence[Statement]) -> None:
    """Run history statements (built per run, or built once with their parameters)."""
    for statement in statements:
        if isinstance(statement, tuple):
            connection.execute(*statement)
        else:
            connection.execute(statement)


async def _fenced_statement(
    session_factory: SessionFactory, stmt: Executable, params: dict[str, Any],
    history: Sequence[Statement],
) -> bool:
    transactions = transactions_of(engine_of(session_factory))

    def fenced(connection: Connection) -> bool:
        return bool(connection.execute(stmt, params).rowcount)

    def fenced_with_history(connection: Connection) -> bool:
        if not fenced(connection):
            return False
        execute_all(connection, history)
        return True

    if history:
        try:
            return await transactions.run(fenced_with_history)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise
    return await transactions.run(fenced)


async def due_keys(
    session_factory: SessionFactory,
    now: datetime,
    limit: int,
    skip_types: Collection[SyncType] = (),
) -> list[SyncKey]:
    """Owed keys that are due (fresh requests and overdue retries) and not leased, leaving
    out ``skip_types`` (parked: their service's circuit is open), so they cannot fill the
    batch and starve the other types, and held keys (an operator decides when they run)."""
    due = or_(SyncState.next_attempt_at.is_(None), SyncState.next_attempt_at <= now)
    skip = [str(t) for t in skip_types]
    stmt = (
        select(SyncState.sync_type, SyncState.group_id)
        .where(owed(), due, lease_free(now), SyncState.sync_type.not_in(skip),
               SyncState.status != SyncStatus.HELD.value)
        .order_by(SyncState.updated_at)
        .limit(limit)
    )
    # Core on a pooled connection: the sweep runs this on every wake (issue 26).
    async with engine_of(session_factory).connect() as connection:
        rows = (await connection.execute(stmt)).all()
    return [SyncKey(SyncType(t), g) for t, g in rows]


@dataclass(frozen=True)
class OwedRetry:
    key: SyncKey
    attempt: int
    next_attempt_at: datetime


async def owed_retries(session_factory: SessionFactory) -> list[OwedRetry]:
    """Every owed key waiting on a backoff timer: what a starting daemon re-arms."""
    stmt = select(SyncState.sync_type, SyncState.group_id, SyncState.attempt,
                  SyncState.next_attempt_at).where(owed(), SyncState.next_attempt_at.is_not(None))
    async with session_factory() as session:
        rows = (await session.execute(stmt)).all()
    return [OwedRetry(SyncKey(SyncType(t), g), a, n) for t, g, a, n in rows if n is not None]


async def reclaim_leases(session_factory: SessionFactory, now: datetime) -> int:
    """Free leases that expired by heartbeat, and only those. A lost advisory lock does
    not prove its daemon dead (its lock connection may merely have dropped): a live
    holder keeps renewing, and its lease is never taken from it."""
    stmt = (
        update(SyncState)
        .where(SyncState.lease_owner.is_not(None), SyncState.lease_expires_at < now)
        .values(status=_status_when_idle(), lease_owner=None, lease_expires_at=None,
                updated_at=now)
        .execution_options(synchronize_session=False)
    )
    async with session_factory() as session, session.begin():
        result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def not_yet_covered(
    session_factory: SessionFactory, keys: list[SyncKey], now: datetime
) -> list[SyncKey]:
    """The keys a request must still mark owed. A key already owed and not running is
    covered: the run that will claim it starts after our caller's commit and sees it.
    A running key is not: its run may have read the database before that commit."""
    groups = {k.group_id for k in keys}
    stmt = select(SyncState.sync_type, SyncState.group_id).where(
        SyncState.group_id.in_(groups),
        owed(),
        or_(SyncState.lease_owner.is_(None), SyncState.lease_expires_at < now),
    )
    async with session_factory() as session:
        covered = {SyncKey(SyncType(t), g) for t, g in (await session.execute(stmt)).all()}
    return [k for k in keys if k not in covered]


async def is_owed(session_factory: SessionFactory, key: SyncKey) -> bool:
    async with session_factory() as session:
        found = await session.scalar(select(SyncState.group_id).where(_key(key), owed()))
    return found is not None
