"""The composition root's builder: one engine ``Runtime`` from settings (DESIGN §2, STYLE).

``open_runtime`` builds the database engine (unless given one), the session factory and
the syncers, on an ``AsyncExitStack`` that closes them. The syncers come from
``settings.syncer_factory`` ("module:function"), awaited with a frozen ``SyncerDeps``.
Starting and stopping a runtime (leadership, scheduler, recovery, sweep) is
``core.embed.GroupsyncRuntime``; the engine itself only knows ``core.engine.running.context``.
"""

from __future__ import annotations

import importlib
import os
import socket
import uuid
from contextlib import AsyncExitStack
from typing import cast

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clients.status import ClientBoard
from core.clock import Clock, SystemClock, TimeScale
from core.config import Settings
from core.db.session import create_engine, create_session_factory
from core.engine.health.outage import DatabaseOutage
from core.engine.running.context import RetryTimers, Runtime
from core.engine.running.coordinator import Coordinator
from core.engine.running.credentials import PROBE_INTERVAL_SECONDS, CredentialWatch
from core.engine.running.held import GuardStore
from core.engine.running.pauses import PauseFlags
from core.engine.running.slots import RunSlots
from core.errors import ConfigError
from core.history.grid import Grid
from core.history.tally import TALLY
from core.syncers import guard
from core.syncers import types as sync_type_registry
from core.syncers.deps import SyncerDeps, SyncerFactory

__all__ = ["Runtime", "SyncerDeps", "SyncerFactory", "lease_owner_id", "load_factory",
           "open_runtime"]


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
    scheduler: BaseScheduler | None = None,
    retry_timers: RetryTimers | None = None,
    engine: AsyncEngine | None = None,
    clock: Clock | None = None,
    owner_kind: str = "app",
    outage: DatabaseOutage | None = None,
) -> Runtime:
    """Build a runtime whose resources close when ``stack`` does.

    ``scheduler`` is the runtime's own scheduler (reminder timers, periodic work; public
    calls find the runtime once it is installed in the process slot, not through it).
    Retry timers go to ``retry_timers`` when given
    (an application's own scheduler), else to ``scheduler``."""
    if engine is None:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
    clock = clock or SystemClock()
    time_scale = TimeScale(settings.time_scale)
    session_factory = create_session_factory(engine)
    board = ClientBoard()
    deps = SyncerDeps(settings, session_factory, clock, time_scale, stack, board)
    sync_type_registry.load_modules(settings.sync_type_modules)
    syncers = dict(await load_factory(settings.syncer_factory)(deps))
    missing = [t for t in sync_type_registry.names() if t not in syncers]
    if missing:
        raise ConfigError("SYNCER_FACTORY", f"no syncer for: {', '.join(missing)}")
    timers = retry_timers if retry_timers is not None else cast(RetryTimers | None, scheduler)
    # This runtime's clock and scale bucket the process's history counts.
    TALLY.use(clock.now, Grid(settings.time_scale))
    runtime = Runtime(
        settings=settings,
        clock=clock,
        time_scale=time_scale,
        engine=engine,
        session_factory=session_factory,
        syncers=syncers,
        scheduler=timers,
        owner=lease_owner_id(owner_kind),
        coordinator=Coordinator(window=time_scale.seconds(settings.coalesce_window_seconds)),
        limiter=RunSlots(settings.sync_concurrency),
        pauses=PauseFlags(session_factory, now=clock.now),
        credentials=CredentialWatch(session_factory,
                                    time_scale.seconds(PROBE_INTERVAL_SECONDS)),
        client_board=board,
        outage=outage or DatabaseOutage(),
        guard=GuardStore(session_factory, guard_limits(settings),
                         time_scale.seconds(guard.WINDOW_SECONDS)),
    )
    stack.push_async_callback(runtime.credentials.close)
    return runtime


def guard_limits(settings: Settings) -> guard.Limits:
    return guard.Limits(settings.guard_max_removals, settings.guard_max_removal_share,
                        settings.guard_max_removals_per_10_min)
