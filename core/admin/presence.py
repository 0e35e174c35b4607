"""Daemon heartbeats: who is alive, who is active, and each daemon's live client state.

Every daemon (active or standby) writes its row every ``HEARTBEAT_SECONDS``. The active
one also publishes its clients' breaker and rate-limit state there, so the CLI, reading
only the database, shows what the daemon's memory holds. The same loop applies breaker
resets requested through the ``service_state`` rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from core.admin.control import service_rows
from core.admin.waiting import aware
from core.clients.status import ClientBoard, ServiceStatus
from core.clock import Clock
from core.db.models import DaemonHeartbeat, ServiceState
from core.db.session import SessionFactory
from core.db.transactions import Transactions
from core.engine.health.outage import is_database_unavailable
from core.observability import get_logger

log = get_logger("groupsync.presence")

HEARTBEAT_SECONDS = 2.0
# Three missed beats: the daemon is gone (or its database is). Its row stays for a while
# (FORGET_AFTER) but it is no longer counted, as a standby or as the active daemon.
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS
FORGET_AFTER = timedelta(hours=1)
PRUNE_EVERY = 60  # beats between two prunes of forgotten rows (the first beat prunes)

# Built once: a beat is the one statement an idle daemon runs most.
_UPDATE = (update(DaemonHeartbeat).where(DaemonHeartbeat.id == bindparam("daemon_id"))
           .values(role=bindparam("role"), since=bindparam("since"),
                   last_heartbeat=bindparam("last_heartbeat"), clients=bindparam("clients")))
_PRUNE = delete(DaemonHeartbeat).where(DaemonHeartbeat.last_heartbeat < bindparam("forgotten"))
_RESETS_REQUESTED = select(ServiceState.service, ServiceState.breaker_reset_requested_at).where(
    ServiceState.breaker_reset_requested_at.is_not(None))


def client_json(status: ServiceStatus, now: datetime) -> dict[str, Any]:
    """Durations made wall-clock times, so a reader later still sees when things end."""
    def at(seconds: float) -> str | None:
        return (now + timedelta(seconds=seconds)).isoformat() if seconds > 0 else None

    lanes = sorted(set(status.rate_limit_remaining) | set(status.rate_limited_for))
    return {
        "service": status.service,
        "breaker": {
            "state": status.breaker_state,
            "half_open_at": at(status.seconds_until_half_open),
            "consecutive_failures": status.consecutive_failures,
            "rate_limited": status.rate_limits,
        },
        "rate_limits": [
            {
                "lane": lane,
                "remaining": status.rate_limit_remaining.get(lane),
                "reset_at": at(status.rate_limit_reset_in.get(lane, 0.0)),
                "limited_until": at(status.rate_limited_for.get(lane, 0.0)),
            }
            for lane in lanes
        ],
        "invalid_requests": {
            "used": status.invalid_requests, "budget": status.invalid_request_budget,
        },
        "gateway": status.gateway,
    }


class Presence:
    def __init__(
        self,
        session_factory: SessionFactory,
        clock: Clock,
        owner: str,
        transactions: Transactions,
        board: Callable[[], ClientBoard | None] = lambda: None,
    ) -> None:
        self.sessions = session_factory
        self.transactions = transactions
        self.clock = clock
        self.id = owner
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.role = "standby"
        self.database_ok = True  # the last heartbeat reached the database
        self.since = clock.now()
        self.board = board
        self._resets_applied: dict[str, datetime] = {}
        self._beats = 0

    def become_standby(self) -> None:
        """The daemon's term as leader ended (leadership lost); it contends again."""
        self.role = "standby"

    def become_active(self) -> None:
        self.role = "active"
        self.since = self.clock.now()

    async def beat(self) -> dict[str, datetime]:
        """One UPDATE of this daemon's row (an INSERT the first time, or after a reader
        forgot it); rows of daemons long gone are pruned every ``PRUNE_EVERY`` beats.
        A beat is most of an idle daemon's writes (issue 26): one transaction, in one
        thread hop on SQLite (``core.db.transactions``), which also reads the breaker
        resets operators requested (service -> when), for ``apply_breaker_resets``."""
        now = self.clock.now()
        board = self.board()
        clients = [client_json(s, now) for s in board.statuses()] if board else []
        values = {"role": self.role, "since": self.since, "last_heartbeat": now,
                  "clients": clients}
        prune = self._beats % PRUNE_EVERY == 0

        def write(connection: Connection) -> list[tuple[str, datetime | None]]:
            updated = connection.execute(_UPDATE, {"daemon_id": self.id, **values})
            if not updated.rowcount:
                connection.execute(insert(DaemonHeartbeat).values(
                    id=self.id, host=self.host, pid=self.pid, **values))
            if prune:
                connection.execute(_PRUNE, {"forgotten": now - FORGET_AFTER})
            return [(service, at) for service, at in connection.execute(_RESETS_REQUESTED)]

        requested = await self.transactions.run(write)
        self._beats += 1
        return {service: aware(at) for service, at in requested if at is not None}

    async def apply_breaker_resets(self, requested: dict[str, datetime] | None = None) -> int:
        """Reset the breakers whose reset was requested since this daemon last applied
        one (``requested``: what the beat read; None: read it now)."""
        board = self.board()
        if board is None:
            return 0
        if requested is None:
            requested = {service: aware(row.breaker_reset_requested_at)
                         for service, row in (await service_rows(self.sessions)).items()
                         if row.breaker_reset_requested_at is not None}
        applied = 0
        for service, at in requested.items():
            if at <= aware(self._resets_applied.get(service, self.since)):
                continue
            self._resets_applied[service] = at
            if board.reset_breaker(service):
                applied += 1
                log.info("breaker_reset_applied", service=service, daemon=self.id)
        return applied

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                requested = await self.beat()
                self.database_ok = True
                await self.apply_breaker_resets(requested)
            except Exception as exc:  # the database blinked: the next beat tries again
                # The admin API answers 503 while the database is away.
                self.database_ok = not is_database_unavailable(exc)
                if not is_database_unavailable(exc):  # an outage is the daemon's one line
                    log.warning("heartbeat_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=HEARTBEAT_SECONDS)

    async def leave(self) -> None:
        with contextlib.suppress(Exception):
            async with self.sessions() as session, session.begin():
                await session.execute(delete(DaemonHeartbeat).where(DaemonHeartbeat.id == self.id))


def is_alive(row: DaemonHeartbeat, now: datetime) -> bool:
    """A heartbeat older than three intervals is a dead daemon's (killed, or refused)."""
    return row.last_heartbeat >= now - timedelta(seconds=STALE_AFTER_SECONDS)


def alive_of(rows: list[DaemonHeartbeat], now: datetime) -> list[DaemonHeartbeat]:
    return [r for r in rows if is_alive(r, now)]


def daemon_json(row: DaemonHeartbeat, now: datetime) -> dict[str, Any]:
    alive = is_alive(row, now)
    return {"id": row.id, "host": row.host, "pid": row.pid, "role": row.role,
            "since": row.since.isoformat(), "last_heartbeat": row.last_heartbeat.isoformat(),
            "alive": alive}


async def daemons(session_factory: SessionFactory) -> list[DaemonHeartbeat]:
    async with session_factory() as session:
        return list((await session.scalars(
            select(DaemonHeartbeat).order_by(DaemonHeartbeat.since))).all())


def active_of(rows: list[DaemonHeartbeat], now: datetime) -> DaemonHeartbeat | None:
    fresh = [r for r in alive_of(rows, now) if r.role == "active"]
    return max(fresh, key=lambda r: r.last_heartbeat, default=None)
