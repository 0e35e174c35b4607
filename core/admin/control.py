"""Operator switches on keys and services, written to the rows every process reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.admin.errors import Conflict, Invalid, NotFound
from core.admin.keys import parse_sync_type
from core.db.models import Group, ServiceState, SyncState
from core.db.session import SessionFactory, dialect_name
from core.engine.running.outbox import OUTBOX_CHANNEL, mark_owed
from core.engine.running.pauses import pause_in_force
from core.engine.running.state import SyncKey, owed
from core.errors import CircuitOpenError
from core.syncers import types


def parse_service(value: str) -> str:
    """A service some registered sync type calls (discord, calendar, …)."""
    if value in types.services():
        return value
    valid = ", ".join(types.services())
    raise Invalid(f"unknown service {value!r}; use one of: {valid}")


def require_positive(value: int, name: str = "group_id") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Invalid(f"{name} must be a positive integer, got {value!r}")
    return value


def _running(row: SyncState, now: datetime) -> bool:
    return row.lease_owner is not None and (
        row.lease_expires_at is None or row.lease_expires_at >= now
    )


def _due_now(row: SyncState, now: datetime) -> bool:
    owed = row.requested_generation > row.completed_generation
    return owed and (row.next_attempt_at is None or row.next_attempt_at <= now)


async def retry_one(
    session_factory: SessionFactory, sync_type: str, group_id: int, now: datetime
) -> SyncKey:
    """Make one key due now (keeping its attempt count, so its backoff continues if it
    fails again). Refused while it runs or when it is already due; an unknown group with
    no key is refused too (a deleted group that has a key may be retried to empty)."""
    key = SyncKey(parse_sync_type(sync_type), require_positive(group_id))
    async with session_factory() as session, session.begin():
        row = await session.get(SyncState, (key.sync_type, key.group_id))
        if row is None:
            if await session.get(Group, key.group_id) is None:
                raise NotFound(f"unknown group {key.group_id}: no such group and no sync key")
            await mark_owed(session, [key.group_id], now, [key.sync_type])
            return key
        if _running(row, now):
            raise Conflict(f"{key.sync_type}:{key.group_id} is running now")
        if _due_now(row, now):
            raise Conflict(f"{key.sync_type}:{key.group_id} is already due to run now")
        if row.requested_generation > row.completed_generation:
            result = await session.execute(
                update(SyncState)
                .where(SyncState.sync_type == key.sync_type,
                       SyncState.group_id == key.group_id,
                       or_(SyncState.lease_owner.is_(None), SyncState.lease_expires_at < now))
                .values(next_attempt_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                raise Conflict(f"{key.sync_type}:{key.group_id} is running now")
            await _notify(session)
        else:
            await mark_owed(session, [key.group_id], now, [key.sync_type])
    return key


async def make_due(session_factory: SessionFactory, key: SyncKey, now: datetime) -> bool:
    """For bulk work: owed keys become due now, settled keys owed again. False while the
    key runs elsewhere (that run is its retry)."""
    async with session_factory() as session, session.begin():
        row = await session.get(SyncState, (key.sync_type, key.group_id))
        if row is not None and _running(row, now):
            return False
        if row is not None and row.requested_generation > row.completed_generation:
            await session.execute(
                update(SyncState)
                .where(SyncState.sync_type == key.sync_type,
                       SyncState.group_id == key.group_id,
                       or_(SyncState.next_attempt_at.is_(None),
                           and_(SyncState.next_attempt_at > now)))
                .values(next_attempt_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        else:
            await mark_owed(session, [key.group_id], now, [key.sync_type])
    return True


async def _notify(session: Any) -> None:
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})


async def _service_row(session: AsyncSession, name: str, now: datetime) -> ServiceState:
    row = await session.get(ServiceState, name)
    if row is None:
        row = ServiceState(service=name, paused=False, updated_at=now)
        session.add(row)
    return row


async def set_paused(
    session_factory: SessionFactory, service: str, paused: bool, now: datetime,
    reason: str | None = None, by: str | None = None, until: datetime | None = None,
) -> bool:
    """Returns whether the flag changed. A pause records who asked and, the first time,
    since when (pausing a paused service again keeps its start, takes the new reason and
    the new end: ``until``, None for "until resumed"). A pause whose end has passed is
    over: pausing again starts a new one."""
    name = parse_service(service)
    if paused and until is not None and until <= now:
        raise Invalid(f"a pause must end in the future, not at {until.isoformat()}")
    async with session_factory() as session, session.begin():
        row = await _service_row(session, name, now)
        changed = pause_in_force(row.paused, row.paused_until, now) != paused
        row.paused = paused
        row.paused_reason = reason if paused else None
        row.paused_by = by if paused else None
        row.paused_at = ((None if changed else row.paused_at) or now) if paused else None
        row.paused_until = until if paused else None
        row.updated_at = now
        if not paused:
            await _notify(session)  # wake the daemon: the paused keys are owed and due
    return changed


async def request_breaker_reset(session_factory: SessionFactory, service: str, now: datetime
                                ) -> None:
    name = parse_service(service)
    async with session_factory() as session, session.begin():
        row = await _service_row(session, name, now)
        row.breaker_reset_requested_at = now
        row.updated_at = now
        # Keys that were only waiting for the circuit to half-open run again now.
        types_called = list(types.types_of(name))
        await session.execute(
            update(SyncState)
            .where(SyncState.sync_type.in_(types_called), owed(),
                   SyncState.error_kind == CircuitOpenError.kind,
                   SyncState.next_attempt_at > now)
            .values(next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await _notify(session)


async def service_rows(session_factory: SessionFactory) -> dict[str, ServiceState]:
    async with session_factory() as session:
        rows = (await session.scalars(select(ServiceState))).all()
    return {r.service: r for r in rows}
