"""Fencing: a run's writes that record external effects commit only while it holds its lease.

``LeaseFence.transaction()`` opens one transaction whose first statement re-asserts the
lease (an UPDATE of the key's own sync-state row matching owner and expiry). On
PostgreSQL that UPDATE row-locks the sync-state row until commit, so no other process can
claim the key between the check and the caller's writes; on SQLite the write transaction
is serialised anyway. Either way the check and the writes commit or fail as one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import and_, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db.models import SyncState
from core.db.session import SessionFactory
from core.engine.running.state import Claim
from core.errors import LeaseLostError


class LeaseFence:
    """The ``core.syncers.base.Fence`` of one claimed run."""

    def __init__(self, session_factory: SessionFactory, claim: Claim, clock: Clock) -> None:
        self._sessions = session_factory
        self._claim = claim
        self._clock = clock
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

    def _error(self) -> LeaseLostError:
        key = self._claim.key
        return LeaseLostError(
            f"lease on {key.sync_type} group {key.group_id} lost; the key stays owed"
        )
