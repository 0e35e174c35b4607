"""What a run needs, built once and entered on an AsyncExitStack (DESIGN §2, STYLE).

``open_runtime`` builds the database engine (unless given one), the session factory and
the syncers. The syncers come from ``settings.syncer_factory`` ("module:function"),
awaited with a frozen ``SyncerDeps``; a factory registers its own clean-up (HTTP
sessions, thread pools) on ``deps.exit_stack``.
"""

from __future__ import annotations

import importlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from core.clients.status import ClientBoard
from core.clock import Clock, SystemClock, TimeScale
from core.config import Settings
from core.db.models import SyncType
from core.db.session import SessionFactory, create_engine, create_session_factory
from core.engine.coordinator import Coordinator
from core.engine.outage import DatabaseOutage
from core.engine.parking import Parking
from core.engine.pauses import PauseFlags
from core.engine.slots import RunSlots
from core.errors import ConfigError
from core.syncers.base import Syncer

if TYPE_CHECKING:
    from core.notifications.scheduler import SyncScheduler


@dataclass(frozen=True)
class SyncerDeps:
    """Everything a syncer factory may use. Typed, frozen: no dependency bag."""

    settings: Settings
    session_factory: SessionFactory
    clock: Clock
    time_scale: TimeScale
    scheduler: SyncScheduler | None
    exit_stack: AsyncExitStack
    client_board: ClientBoard = field(default_factory=ClientBoard)  # for core/admin


SyncerFactory = Callable[[SyncerDeps], Awaitable[Mapping[SyncType, Syncer]]]


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    time_scale: TimeScale
    engine: AsyncEngine
    session_factory: SessionFactory
    syncers: Mapping[SyncType, Syncer]
    scheduler: SyncScheduler | None
    owner: str  # lease owner id of this process's runs
    coordinator: Coordinator = field(default_factory=lambda: Coordinator(window=0.0))
    # Run slots per process, a share reserved for interactive keys (core/engine/slots.py).
    limiter: RunSlots = field(default_factory=lambda: RunSlots(8))
    pauses: PauseFlags = field(default_factory=lambda: PauseFlags(None))
    client_board: ClientBoard = field(default_factory=ClientBoard)
    # Shared by every loop of the process: one log line pair per database outage.
    outage: DatabaseOutage = field(default_factory=DatabaseOutage)
    parking: Parking = field(default_factory=Parking)  # sync types whose circuit is open


def lease_owner_id(kind: str) -> str:
    """'daemon:host:pid:nonce' or 'app:…': a taking-over daemon frees 'daemon:' leases."""
    return f"{kind}:{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def load_factory(reference: str) -> SyncerFactory:
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError("SYNCER_FACTORY", f"must be 'module:function', got {reference!r}")
    try:
        module = importlib.import_module(module_name)
        return cast(SyncerFactory, getattr(module, attribute))
    except (ImportError, AttributeError) as exc:
        raise ConfigError("SYNCER_FACTORY", f"cannot load {reference!r}: {exc}") from None


async def open_runtime(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    scheduler: SyncScheduler | None = None,
    engine: AsyncEngine | None = None,
    clock: Clock | None = None,
    owner_kind: str = "app",
    outage: DatabaseOutage | None = None,
) -> Runtime:
    """Build a runtime whose resources close when ``stack`` does."""
    if engine is None:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
    clock = clock or SystemClock()
    time_scale = TimeScale(settings.time_scale)
    session_factory = create_session_factory(engine)
    board = ClientBoard()
    deps = SyncerDeps(settings, session_factory, clock, time_scale, scheduler, stack, board)
    syncers = dict(await load_factory(settings.syncer_factory)(deps))
    missing = [t.value for t in SyncType if t not in syncers]
    if missing:
        raise ConfigError("SYNCER_FACTORY", f"no syncer for: {', '.join(missing)}")
    runtime = Runtime(
        settings=settings,
        clock=clock,
        time_scale=time_scale,
        engine=engine,
        session_factory=session_factory,
        syncers=syncers,
        scheduler=scheduler,
        owner=lease_owner_id(owner_kind),
        coordinator=Coordinator(window=time_scale.seconds(settings.coalesce_window_seconds)),
        limiter=RunSlots(settings.sync_concurrency),
        pauses=PauseFlags(session_factory),
        client_board=board,
        outage=outage or DatabaseOutage(),
    )
    if scheduler is not None:
        scheduler.runtime = runtime
    return runtime
