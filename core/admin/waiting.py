"""Why a key is not running right now, and when it may next run: one vocabulary for
``status``, the admin API and the dashboard (DESIGN §5).

``waiting_reason(key, service, now)`` is pure: it takes the facts of the key's row
(``KeyFacts``), of its service (``ServiceFacts``: pause, breaker, rate limit, and the
states other features add) and the time, and returns a ``Waiting`` (code, until, detail)
or None when the key is neither owed nor waiting (settled, or running now).

The codes, strongest first (the first that applies wins, because it is the one that has
to end before the key can run):

- ``held``: a deletion guard holds the key's plan for an operator (``until``: its next
  re-check against the live state, which holds it again unless nobody is left to remove);
- ``credentials_rejected``: the service refused groupsync's credentials; the key is
  parked until a probe succeeds (``until``: the next probe);
- ``paused``: an operator paused the service (``until``: the end the operator gave the
  pause, or none: until ``resume``);
- ``circuit_open``: the service's breaker is open (``until``: when it half-opens);
- ``retry_after``: the service asked us to wait (a 429's ``Retry-After``);
- ``backoff``: the last attempt failed; the next one is at ``until``;
- ``no_daemon``: owed and due, but no daemon is active to run it;
- ``queued``: owed and due; the active daemon runs it within seconds. A key that never
  ran says which of these keeps it ("pending" alone says nothing).

Plugging in a new state: add a field to ``KeyFacts`` (per key) or ``ServiceFacts`` (per
service) with a default that means "not so", and one branch in ``_first_reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, overload

from core.admin.relative import relative_since, relative_until


class WaitCode(StrEnum):
    HELD = "held"
    CREDENTIALS_REJECTED = "credentials_rejected"
    PAUSED = "paused"
    CIRCUIT_OPEN = "circuit_open"
    RETRY_AFTER = "retry_after"
    BACKOFF = "backoff"
    NO_DAEMON = "no_daemon"
    QUEUED = "queued"


# What an operator's "retry now" cannot get past: refused with the reason instead.
BLOCKING = frozenset({WaitCode.HELD, WaitCode.CREDENTIALS_REJECTED, WaitCode.PAUSED,
                      WaitCode.CIRCUIT_OPEN})


class KeyRow(Protocol):
    """What ``KeyFacts.of`` reads: a ``core.db.models.SyncState`` row has all of it."""

    sync_type: str
    status: str
    requested_generation: int
    completed_generation: int
    attempt: int
    next_attempt_at: datetime | None
    error_kind: str | None
    last_attempt_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class KeyFacts:
    sync_type: str
    owed: bool
    attempt: int = 0
    next_attempt_at: datetime | None = None
    error_kind: str | None = None
    ever_ran: bool = True
    running: bool = False
    held: str | None = None  # why a deletion guard holds it (issue 25), None: not held

    @classmethod
    def of(cls, row: KeyRow, now: datetime, held: str | None = None) -> KeyFacts:
        running = row.lease_owner is not None and (
            row.lease_expires_at is None or aware(row.lease_expires_at) >= now
        )
        return cls(
            sync_type=row.sync_type,
            owed=row.requested_generation > row.completed_generation,
            attempt=row.attempt,
            next_attempt_at=aware(row.next_attempt_at),
            error_kind=row.error_kind,
            ever_ran=row.last_attempt_at is not None,
            running=running,
            # A held key's row carries the guard's reason (core.engine.running.state).
            held=held if held is not None else (
                (row.last_error or "held by the deletion guard") if row.status == "held"
                else None),
        )


@dataclass(frozen=True)
class ServiceFacts:
    service: str
    paused: bool = False
    paused_reason: str | None = None
    paused_by: str | None = None  # who paused it (the audit's "via:who")
    paused_at: datetime | None = None
    paused_until: datetime | None = None  # the pause ends by itself then (None: on resume)
    breaker_state: str = "closed"  # closed | open | half_open | unknown
    half_open_at: datetime | None = None
    limited_until: datetime | None = None  # the latest lane limit the service imposed
    credentials_rejected: str | None = None  # the service's words (issue 25), None: fine
    next_probe_at: datetime | None = None

    @classmethod
    def from_overview(cls, entry: Mapping[str, Any]) -> ServiceFacts:
        """From one item of the overview's ``services`` list (what the API shows)."""
        breaker = entry.get("breaker") or {}
        limits = [parse_time(lane.get("limited_until")) for lane in entry.get("rate_limits", [])]
        credentials = entry.get("credentials") or {}
        return cls(
            service=str(entry["name"]),
            paused=bool(entry.get("paused")),
            paused_reason=entry.get("paused_reason"),
            paused_by=entry.get("paused_by"),
            paused_at=parse_time(entry.get("paused_at")),
            paused_until=parse_time(entry.get("paused_until")),
            breaker_state=str(breaker.get("state") or "unknown"),
            half_open_at=parse_time(breaker.get("half_open_at")),
            limited_until=max((t for t in limits if t is not None), default=None),
            credentials_rejected=credentials.get("rejected"),
            next_probe_at=parse_time(credentials.get("next_probe_at")),
        )


@dataclass(frozen=True)
class Waiting:
    code: WaitCode
    until: datetime | None  # the earliest moment the key may run; None: nobody can tell
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code.value, "until": self.until.isoformat() if self.until else None,
                "detail": self.detail}


def waiting_reason(
    key: KeyFacts, service: ServiceFacts | None, now: datetime, *, daemon_active: bool = True
) -> Waiting | None:
    """The reason ``key`` is not running now, or None (settled, or running)."""
    if key.running or not key.owed:
        return None
    return _first_reason(key, service, aware(now), daemon_active)


def _first_reason(
    key: KeyFacts, service: ServiceFacts | None, now: datetime, daemon_active: bool
) -> Waiting:
    due = key.next_attempt_at if key.next_attempt_at and key.next_attempt_at > now else None
    name = service.service if service else key.sync_type
    if key.held is not None:
        # Its next run is the re-check against the live state (HELD_RECHECK_SECONDS):
        # still held then unless nobody is left to remove; a person decides the rest.
        recheck = f"re-checked against the live state {_when(due, now)}; " if due else ""
        return Waiting(WaitCode.HELD, due, f"held for approval: {key.held}; {recheck}"
                       "`held` shows the plan, `approve` or `reject` decides")
    if service is not None and service.credentials_rejected is not None:
        probe = _later(service.next_probe_at, due)
        return Waiting(WaitCode.CREDENTIALS_REJECTED, probe,
                       f"{name} rejected the credentials ({service.credentials_rejected}); "
                       f"parked, next probe {_when(probe, now)}")
    if service is not None and service.paused:
        who = f" by {service.paused_by}" if service.paused_by else ""
        since = (f" since {service.paused_at:%H:%M:%S}Z "
                 f"({relative_since(service.paused_at, now)})" if service.paused_at else "")
        why = f" ({service.paused_reason})" if service.paused_reason else ""
        if service.paused_until is None:
            return Waiting(WaitCode.PAUSED, None,
                           f"{name} is paused{who}{since}{why}; `resume {name}` lets it run")
        until = _later(service.paused_until, due)
        return Waiting(WaitCode.PAUSED, until,
                       f"{name} is paused{who}{since}{why} until "
                       f"{_when(service.paused_until, now)}; `resume {name}` lets it run "
                       "sooner")
    if service is not None and service.breaker_state in ("open", "half_open") and (
        service.half_open_at is not None and service.half_open_at > now
    ):
        until = _later(service.half_open_at, due)
        return Waiting(WaitCode.CIRCUIT_OPEN, until,
                       f"{name} circuit is open after repeated failures; it half-opens "
                       f"{_when(service.half_open_at, now)}")
    limited = service.limited_until if service and service.limited_until else None
    if limited is not None and limited > now:
        until = _later(limited, due)
        return Waiting(WaitCode.RETRY_AFTER, until,
                       f"{name} asked us to wait (rate limited); next try {_when(until, now)}")
    if due is not None:
        if key.error_kind == "rate_limited":
            return Waiting(WaitCode.RETRY_AFTER, due,
                           f"{name} answered 429; next try {_when(due, now)} (its Retry-After)")
        return Waiting(WaitCode.BACKOFF, due,
                       f"attempt {key.attempt} failed; next try {_when(due, now)} (backoff)")
    if not daemon_active:
        return Waiting(WaitCode.NO_DAEMON, None,
                       "due, but no daemon is active to run it: start `groupsync run`")
    what = "requested and not run yet" if not key.ever_ran else "due"
    return Waiting(WaitCode.QUEUED, now, f"{what}; the active daemon runs it within seconds")


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    times = [t for t in (first, second) if t is not None]
    return max(times) if times else None


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "when it is known"
    return f"at {at:%H:%M:%S}Z ({relative_until(at, now)})"


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
@overload
def aware(value: datetime | None) -> datetime | None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return aware(value)
    return aware(datetime.fromisoformat(str(value)))
