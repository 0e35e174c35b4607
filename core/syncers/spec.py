"""What a sync type is (``SyncTypeSpec``); ``core.syncers.types`` holds the registered ones.

A sync type is one ``register(SyncTypeSpec(...))``: its syncer, the external service it
calls (the pause scope, the breaker and health it answers to), whether the drift sweep
and ``drift`` read it, what a force re-sync forgets, how many calls a run will cost, and
its label.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.db.models import SyncType
from core.lanes import Lane

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from core.clients.factory import Clients
    from core.config import Settings
    from core.syncers.base import Syncer
    from core.syncers.deps import SyncerDeps
    from core.syncers.snapshot import GroupSnapshot

@dataclass(frozen=True)
class Estimate:
    calls: int = 0
    overwrites: int = 0  # discord grants the run records
    events: int = 0  # calendar events the run records
    reminders: int = 0  # reminders still due that stay (or become) scheduled
    sends: tuple[str, ...] = ()  # the writes planned, each as its request ("PUT /channels/…")

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.calls + other.calls, self.overwrites + other.overwrites,
                        self.events + other.events, self.reminders + other.reminders,
                        self.sends + other.sends)


@dataclass(frozen=True)
class EstimateInput:
    """What an estimator may look at: the group as the run would see it, and its records."""

    session: AsyncSession
    settings: Settings
    snapshot: GroupSnapshot
    now: datetime
    lane: Lane = Lane.INTERACTIVE
    forget: bool = False  # a force re-sync: assume every desired item must be sent again


SyncerBuilder = Callable[["SyncerDeps", "Clients"], "Syncer"]
Estimator = Callable[[EstimateInput], Awaitable[Estimate]]
# Makes the next run send everything again (delivery records kept, see core.admin.resync).
Forgetter = Callable[["AsyncSession", "GroupSnapshot"], Awaitable[None]]


@dataclass(frozen=True)
class SyncTypeSpec:
    name: str  # what rows, logs, metrics, the API and the CLI call it
    label: str  # how the dashboard and `status` title it
    build: SyncerBuilder  # its syncer, over the process's opened clients
    estimate: Estimator  # calls (and records) one run of a key will cost
    # The external service it calls: the pause scope, and whose breaker, credentials
    # and rate limits hold its keys back. None: it only writes rows (nothing to pause).
    service: str | None = None
    service_label: str | None = None  # how the dashboard titles the service (its name if None)
    drift: bool = False  # its syncer reads live state for `drift` and the drift sweep
    forget: Forgetter | None = None  # a force re-sync runs it again after this
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isascii() or not self.name.isidentifier() or len(self.name) > 16:
            # sync_state.sync_type is 16 characters; job ids and metric labels embed it.
            raise ValueError(f"sync type name {self.name!r}: 1-16 ASCII letters, digits, _")

    @property
    def sync_type(self) -> SyncType:
        return SyncType(self.name)
