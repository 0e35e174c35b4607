"""What a syncer factory (SYNCER_FACTORY, "module:function") is given to build the four
syncers: typed and frozen, no dependency bag. A factory registers its own clean-up (HTTP
sessions, thread pools) on ``exit_stack``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from core.clients.status import ClientBoard
from core.clock import Clock, TimeScale
from core.config import Settings
from core.db.models import SyncType
from core.db.session import SessionFactory
from core.syncers.base import Syncer


@dataclass(frozen=True)
class SyncerDeps:
    settings: Settings
    session_factory: SessionFactory
    clock: Clock
    time_scale: TimeScale
    exit_stack: AsyncExitStack
    client_board: ClientBoard = field(default_factory=ClientBoard)  # for core/admin


SyncerFactory = Callable[[SyncerDeps], Awaitable[Mapping[SyncType, Syncer]]]
