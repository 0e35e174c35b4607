"""The interface between the engine and the four syncers.

A syncer reconciles one group's external state with the database and returns a result
dict (DESIGN §2). It signals failure by raising a ``core.errors.SyncError`` subclass (a
``TransientError`` may carry ``retry_after``) or by returning a dict with ``"error"`` or
``"failed" > 0``; the engine owns retries, leases and logging around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.db.models import SyncType
from core.lanes import Lane

SyncResult = dict[str, Any]


@dataclass(frozen=True)
class SyncContext:
    lane: Lane
    now: datetime
    attempt: int = 0


class Syncer(Protocol):
    sync_type: SyncType

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult: ...


def is_failure(result: SyncResult) -> bool:
    return bool(result.get("error")) or int(result.get("failed", 0) or 0) > 0
