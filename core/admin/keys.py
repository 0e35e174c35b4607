"""Reading sync keys: filtered pages, counts, one key with its recent history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from core.admin.errors import Invalid, NotFound
from core.admin.waiting import KeyFacts, ServiceFacts, waiting_reason
from core.db.groups import unknown_groups
from core.db.models import SyncAttempt, SyncState, SyncStatus, SyncType
from core.db.session import SessionFactory
from core.syncers import types

MAX_LIMIT = 500
HISTORY_SHOWN = 20
FAILING = (SyncStatus.RETRYING.value, SyncStatus.NEEDS_ATTENTION.value)


@dataclass(frozen=True)
class KeyFilter:
    service: str | None = None  # a service (discord, calendar) or a sync type
    status: str | None = None
    group_id: int | None = None
    failing_since: datetime | None = None  # failing at least since then

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.service is not None:
            found.append(SyncState.sync_type.in_(sync_types_for(self.service)))
        if self.status is not None:
            if self.status == "failing":
                found.append(SyncState.status.in_(FAILING))
            else:
                found.append(SyncState.status == parse_status(self.status))
        if self.group_id is not None:
            found.append(SyncState.group_id == self.group_id)
        if self.failing_since is not None:
            found.append(SyncState.failing_since <= self.failing_since)
        return found

    def to_json(self) -> dict[str, Any]:
        shown = {"service": self.service, "status": self.status, "group_id": self.group_id,
                 "failing_since": self.failing_since.isoformat() if self.failing_since else None}
        return {k: v for k, v in shown.items() if v is not None}


def sync_types_for(service: str) -> list[str]:
    found = [spec.name for spec in types.registered()
             if spec.service == service or spec.name == service]
    if not found:
        valid = ", ".join(types.scopes())
        raise Invalid(f"unknown service {service!r}; use one of: {valid}")
    return found


def parse_status(status: str) -> str:
    valid = [s.value for s in SyncStatus]
    if status not in valid:
        raise Invalid(f"unknown status {status!r}; use one of: {', '.join(valid)}, failing")
    return status


def parse_sync_type(value: str) -> SyncType:
    if not types.is_registered(value):
        valid = ", ".join(spec.name for spec in types.registered())
        raise Invalid(f"unknown sync type {value!r}; use one of: {valid}")
    return SyncType(value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class WaitContext:
    """What a key's waiting reason depends on beyond its row (``core.admin.waiting``)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    services: dict[str, ServiceFacts] = field(default_factory=dict)
    daemon_active: bool = True

    def waiting(self, row: SyncState) -> dict[str, Any] | None:
        service = types.service_of(row.sync_type) if types.is_registered(row.sync_type) else None
        facts = self.services.get(service) if service else None
        found = waiting_reason(KeyFacts.of(row, self.now), facts, self.now,
                               daemon_active=self.daemon_active)
        return found.to_json() if found is not None else None


def key_item(row: SyncState, context: WaitContext | None = None) -> dict[str, Any]:
    waiting = (context or WaitContext()).waiting(row)
    return {
        "sync_type": row.sync_type,
        "group_id": row.group_id,
        "status": row.status,
        "attempt": row.attempt,
        "owed": row.requested_generation > row.completed_generation,
        "next_attempt_at": _iso(row.next_attempt_at),
        "last_error": row.last_error,
        "error_kind": row.error_kind,
        "failing_since": _iso(row.failing_since),
        "last_success_at": _iso(row.last_success_at),
        # Why it is not running now and when it may (None: settled or running).
        "waiting": waiting,
        "next_run_at": waiting["until"] if waiting else None,
        # An operator's acknowledgement (core.admin.attention), until the next success.
        "acknowledged": ({"by": row.ack_by, "at": _iso(row.ack_at), "note": row.ack_note}
                         if row.ack_at is not None else None),
    }


async def list_keys(
    session_factory: SessionFactory, where: KeyFilter, limit: int = 50, offset: int = 0,
    context: WaitContext | None = None,
) -> dict[str, Any]:
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise Invalid(f"offset must not be negative, got {offset}")
    conditions = where.conditions()
    async with session_factory() as session:
        if where.group_id is not None and await unknown_groups(session, [where.group_id]):
            raise NotFound(f"unknown group {where.group_id}: no such group and no sync key")
        total = await session.scalar(select(func.count()).select_from(SyncState).where(*conditions))
        rows = (await session.scalars(
            select(SyncState).where(*conditions)
            .order_by(SyncState.failing_since.is_(None), SyncState.failing_since,
                      SyncState.sync_type, SyncState.group_id)
            .limit(limit).offset(offset)
        )).all()
    return {"items": [key_item(r, context) for r in rows], "total": int(total or 0),
            "limit": limit, "offset": offset}


async def counts_by_type(session_factory: SessionFactory) -> dict[str, dict[str, int]]:
    """sync type → status → keys."""
    async with session_factory() as session:
        rows = await session.execute(
            select(SyncState.sync_type, SyncState.status, func.count())
            .group_by(SyncState.sync_type, SyncState.status)
        )
        counts: dict[str, dict[str, int]] = {}
        for sync_type, status, n in rows:
            counts.setdefault(sync_type, {})[status] = int(n)
    return counts


async def state_row(session_factory: SessionFactory, sync_type: str, group_id: int
                    ) -> SyncState | None:
    async with session_factory() as session:
        return await session.get(SyncState, (sync_type, group_id))


async def key_detail(session_factory: SessionFactory, sync_type: str, group_id: int,
                     context: WaitContext | None = None) -> dict[str, Any]:
    kind = parse_sync_type(sync_type)
    async with session_factory() as session:
        row = await session.get(SyncState, (kind, group_id))
        if row is None and await unknown_groups(session, [group_id]):
            raise NotFound(f"unknown group {group_id}: no such group and no sync key")
        if row is None:
            raise NotFound(f"no sync key {kind}:{group_id}")
        attempts = (await session.scalars(
            select(SyncAttempt)
            .where(SyncAttempt.sync_type == kind, SyncAttempt.group_id == group_id)
            .order_by(SyncAttempt.id.desc()).limit(HISTORY_SHOWN)
        )).all()
    return {
        **key_item(row, context),
        "history": [
            {"at": a.at.isoformat(), "outcome": a.outcome, "error": a.error,
             "duration_ms": a.duration_ms, "attempt": a.attempt}
            for a in attempts
        ],
    }
