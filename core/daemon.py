"""The long-lived daemon behind ``python main.py run``.

Every resource is entered on one ``AsyncExitStack`` in start-up order and closed in
reverse; nothing connects at import time. ``run_daemon`` returns the process exit code.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack

from core.config import Settings
from core.db.migrate import schema_status
from core.db.session import create_engine
from core.errors import GroupsyncError
from core.observability import get_logger

log = get_logger("groupsync.daemon")


class StartupRefused(GroupsyncError):
    """The daemon will not start; the message says what to do."""


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_daemon(settings: Settings, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        status = await schema_status(engine, settings.database_url)
        if not status.at_head:
            raise StartupRefused(status.problem())
        log.info("daemon_started", settings=settings.public_summary())
        await stop.wait()
        log.info("daemon_stopping")
    log.info("daemon_stopped")
    return 0
