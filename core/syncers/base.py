"""The interface between the engine and the four syncers.

A syncer reconciles one group's external state with the database and returns a result
dict (DESIGN §2). It signals failure by raising a ``core.errors.SyncError`` subclass (a
``TransientError`` may carry ``retry_after``) or by returning a dict with ``"error"`` or
``"failed" > 0``; the engine owns retries, leases and logging around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.db.models import SyncType
from core.db.session import SessionFactory, engine_of
from core.db.transactions import transactions_of, with_session
from core.lanes import Lane

if TYPE_CHECKING:
    from core.syncers.guard import GuardPort

SyncResult = dict[str, Any]
T = TypeVar("T")


class Fence(Protocol):
    """What a syncer writes its delivery records through (DESIGN §3 Fencing).

    ``ensure_held()`` before every external call: raises ``LeaseLostError`` once the run
    lost its lease. ``transaction()`` yields a session whose transaction commits only if
    the lease is still held (the engine's ``LeaseFence``). ``run(work)`` is the same for
    ``work(session)`` on a sync session, in one thread hop on SQLite: the internal
    syncers' reads and writes, which need no await between them."""

    def ensure_held(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]: ...

    async def run(self, work: Callable[[Session], T]) -> T: ...


class Unfenced:
    """For code paths with no lease (a syncer driven directly by a test or a tool)."""

    def __init__(self, session_factory: SessionFactory) -> None:
        self._sessions = session_factory

    def ensure_held(self) -> None:
        return None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            yield session

    async def run(self, work: Callable[[Session], T]) -> T:
        return await transactions_of(engine_of(self._sessions)).run(with_session(work))


@dataclass(frozen=True)
class SyncContext:
    lane: Lane
    now: datetime
    attempt: int = 0
    fence: Fence | None = None  # None: the syncer writes unfenced through its own sessions
    # The deletion guard a planned syncer asks before it applies (core.syncers.guard);
    # None: unguarded (a syncer driven directly by a test or a tool, not by the engine).
    guard: GuardPort | None = None

    def fence_or(self, session_factory: SessionFactory) -> Fence:
        return self.fence if self.fence is not None else Unfenced(session_factory)


class Syncer(Protocol):
    sync_type: SyncType

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult: ...


def is_failure(result: SyncResult) -> bool:
    return bool(result.get("error")) or int(result.get("failed", 0) or 0) > 0
