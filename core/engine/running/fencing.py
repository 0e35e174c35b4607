"""Fencing: a run's writes that record external effects commit only while it holds its lease.

``LeaseFence.transaction()`` (and ``run(work)``, the same on a sync session) opens one
transaction whose first statement re-asserts the lease (an UPDATE of the key's own
sync-state row matching owner and expiry). On
PostgreSQL that UPDATE row-locks the sync-state row until commit, so no other process can
claim the key between the check and the caller's writes; on SQLite the write transaction
is serialised anyway. Either way the check and the writes commit or fail as one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import Connection, and_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.clock import Clock
from core.db.models import SyncState
from core.db.session import SessionFactory, engine_of
from core.db.transactions import transactions_of, with_session
from core.engine.running.state import Claim, lease_reasserted
from core.errors import LeaseLostError

T = TypeVar("T")


class LeaseFence:
    """The ``core.syncers.base.Fence`` of one claimed run."""

    def __init__(self, session_factory: SessionFactory, claim: Claim, clock: Clock) -> None:
        self._sessions = session_factory
        self._claim = claim
        self._clock = clock
        self._transactions = transactions_of(engine_of(session_factory))
        self._lost = False

    @property
    def lost(self) -> bool:
        return self._lost

    def mark_lost(self) -> None:
        """Called when a renewal finds the lease gone: every later check fails fast."""
        self._lost = True

    def ensure_held(self) -> None:
        if self._lost:
            raise self._error()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        self.ensure_held()
        key = self._claim.key
        stmt = (
            update(SyncState)
            .where(
                and_(
                    SyncState.sync_type == key.sync_type,
                    SyncState.group_id == key.group_id,
                    SyncState.lease_owner == self._claim.owner,
                    SyncState.lease_expires_at > self._clock.now(),
                )
            )
            .values(lease_owner=self._claim.owner)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions() as session, session.begin():
            result = await session.execute(stmt)
            if not getattr(result, "rowcount", 0):
                self._lost = True
                raise self._error()
            yield session

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work`` on a session in one fenced transaction, all of it in one thread hop on
        SQLite (``core.db.transactions``): what an internal syncer reads and writes."""
        self.ensure_held()
        in_session = with_session(work)

        def fenced(connection: Connection) -> T:
            if not lease_reasserted(connection, self._claim, self._clock.now()):
                self._lost = True  # a flag the loop reads later: no lock needed
                raise self._error()
            return in_session(connection)

        return await self._transactions.run(fenced)

    def _error(self) -> LeaseLostError:
        key = self._claim.key
        return LeaseLostError(
            f"lease on {key.sync_type} group {key.group_id} lost; the key stays owed"
        )
