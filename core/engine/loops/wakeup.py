"""SQLite's stand-in for NOTIFY: wake the outbox sweep soon after another process commits.

``PRAGMA data_version`` on a connection changes exactly when another connection (an
application process handing keys off) has committed to the file. Reading it is a few
microseconds, so looking every ``WATCH_SECONDS`` costs nothing measurable and brings the
hand-off pickup far under the full sweep's poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from pathlib import Path

import aiosqlite

from core.observability import get_logger

log = get_logger("groupsync.wakeup")
WATCH_SECONDS = 0.025


async def watch_sqlite(path: Path, wake: asyncio.Event, stack: AsyncExitStack) -> None:
    """Start watching ``path``; the watcher stops when ``stack`` closes."""
    try:
        connection = await aiosqlite.connect(str(path), timeout=30)
    except Exception as exc:
        log.warning("sqlite_watch_unavailable", error=str(exc), fallback="polling")
        return
    task = asyncio.get_running_loop().create_task(_watch(connection, wake))

    async def close() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await connection.close()

    stack.push_async_callback(close)


async def _watch(connection: aiosqlite.Connection, wake: asyncio.Event) -> None:
    last: object = None
    while True:
        try:
            async with connection.execute("PRAGMA data_version") as cursor:
                row = await cursor.fetchone()
            version = row[0] if row else None
            if last is not None and version != last:
                wake.set()
            last = version
        except Exception as exc:  # the file blinked; the sweep's own poll still runs
            log.debug("sqlite_watch_failed", error=str(exc))
        await asyncio.sleep(WATCH_SECONDS)
