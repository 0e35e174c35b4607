"""What the engine runs against: one ``Runtime`` value per process, built by the
composition root (``core.runtime.open_runtime``) and passed in.

The engine depends only on these types, never on the composition root that builds them
or on the scheduler module that arms its timers (``RetryTimers`` is the seam).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from core.clients.status import ClientBoard
from core.clock import Clock, TimeScale
from core.config import Settings
from core.db.models import SyncType
from core.db.session import SessionFactory
from core.engine.health.outage import DatabaseOutage
from core.engine.running.calendar_wakes import CalendarWakes
from core.engine.running.coordinator import Coordinator
from core.engine.running.credentials import CredentialWatch
from core.engine.running.parking import Parking
from core.engine.running.pauses import PauseFlags
from core.engine.running.slots import RunSlots
from core.engine.running.state import SyncKey
from core.lanes import LaneAsk
from core.syncers.base import Syncer
from core.syncers.guard import GuardPort


class RetryTimers(Protocol):
    """Arms and removes the APScheduler date job ``sync_retry_{type}_{group}`` of a key."""

    @property
    def running(self) -> bool: ...

    def arm_retry(
        self, key: SyncKey, run_at: datetime, attempt: int, previous_group_id: int | None = None
    ) -> None: ...

    def cancel_retry(self, key: SyncKey) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    time_scale: TimeScale
    engine: AsyncEngine
    session_factory: SessionFactory
    syncers: Mapping[SyncType, Syncer]
    scheduler: RetryTimers | None
    owner: str  # lease owner id of this process's runs
    coordinator: Coordinator = field(default_factory=lambda: Coordinator(window=0.0))
    # Run slots per process, a share reserved for interactive keys (core/engine/running/slots.py).
    limiter: RunSlots = field(default_factory=lambda: RunSlots(8))
    pauses: PauseFlags = field(default_factory=lambda: PauseFlags(None))
    client_board: ClientBoard = field(default_factory=ClientBoard)
    # Shared by every loop of the process: one log line pair per database outage.
    outage: DatabaseOutage = field(default_factory=DatabaseOutage)
    parking: Parking = field(default_factory=Parking)  # sync types whose circuit is open
    # Services that rejected groupsync's credentials: their types are parked too, and
    # probed once a scaled minute (core/engine/running/credentials.py).
    credentials: CredentialWatch = field(default_factory=lambda: CredentialWatch(None))
    # The lane each key's queued (not yet started) run is owed: callers that join it
    # share it, and an interactive one raises it (core/engine/running/runner.py).
    lane_asks: dict[SyncKey, LaneAsk] = field(default_factory=dict)
    # The ask of each key's run in flight (it holds, or waits to take back, its slot): an
    # interactive caller, which waits for that run to end, raises it too.
    running_asks: dict[SyncKey, LaneAsk] = field(default_factory=dict)
    # The deletion guard planned syncers ask before they apply (core/engine/running/held.py);
    # None: unguarded.
    guard: GuardPort | None = None
    # Calendar push: verified notifications wake one calendar's list (calendar_push loop).
    calendar_wakes: CalendarWakes = field(default_factory=CalendarWakes)
