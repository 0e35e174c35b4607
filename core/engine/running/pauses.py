"""Operator pause flags (the ``service_state`` rows), as the engine reads them.

A paused service is never called: its keys stay owed and run after the resume. Every
process reads the rows through a short cache, so a pause written by any process (the
CLI, another daemon's API) is honoured everywhere within ``PAUSE_CACHE_SECONDS``. A
pause given an end (``paused_until``) is over at that time in every process at once,
with nobody writing anything: the row keeps who paused it and why for the trail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import or_, select

from core.db.models import ServiceState, SyncType
from core.db.session import SessionFactory
from core.syncers import types

PAUSE_CACHE_SECONDS = 0.5  # well inside the one second the operator is promised

def pause_in_force(paused: bool | None, until: datetime | None, now: datetime) -> bool:
    """A pause holds until it is resumed or, when it was given an end, until that end."""
    if not paused:
        return False
    if until is None:
        return True
    if until.tzinfo is None:  # SQLite gives naive datetimes back: they are UTC
        until = until.replace(tzinfo=UTC)
    return until > now


def _utc_now() -> datetime:
    return datetime.now(UTC)


def sync_types_of(services: set[str]) -> set[SyncType]:
    return {spec.sync_type for spec in types.registered()
            if spec.service is not None and spec.service in services}


class PauseFlags:
    def __init__(
        self,
        session_factory: SessionFactory | None,
        ttl: float = PAUSE_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._sessions = session_factory
        self._ttl = ttl
        self._monotonic = monotonic
        self._now = now
        self._paused: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def paused_services(self) -> frozenset[str]:
        if self._sessions is None:
            return frozenset()
        if self._monotonic() - self._read_at < self._ttl:
            return self._paused
        async with self._lock:
            if self._monotonic() - self._read_at >= self._ttl:
                async with self._sessions() as session:
                    rows = await session.scalars(
                        select(ServiceState.service).where(
                            ServiceState.paused.is_(True),
                            or_(ServiceState.paused_until.is_(None),
                                ServiceState.paused_until > self._now())))
                    self._paused = frozenset(rows)
                self._read_at = self._monotonic()
        return self._paused

    async def is_paused(self, sync_type: SyncType) -> bool:
        service = types.service_of(sync_type)
        return service is not None and service in await self.paused_services()

    def forget(self) -> None:
        """Re-read on the next question (after this process changed a flag itself)."""
        self._read_at = float("-inf")
