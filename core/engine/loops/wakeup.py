"""SQLite's stand-in for NOTIFY: wake the outbox sweep soon after another process commits.

``PRAGMA data_version`` on a connection changes exactly when another connection (an
application process handing keys off) has committed to the file. Reading it is a few
microseconds when done in place: the watcher keeps its own plain ``sqlite3`` connection
and reads it on the event loop's thread, never waiting on a lock (``timeout=0``: WAL
readers do not block; a busy moment is skipped, the next look catches up). Through
aiosqlite each look was three thread hops, and 40 looks a second were most of an idle
daemon's CPU (issue 26).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path

from core.observability import get_logger

log = get_logger("groupsync.wakeup")
WATCH_SECONDS = 0.025


class DataVersion:
    """The file's commit counter as one connection sees it (None: could not read)."""

    def __init__(self, path: Path) -> None:
        # check_same_thread=False: opened and closed from the loop's thread only, but the
        # stack that closes it may run its callbacks after the loop thread changed in tests.
        self._connection = sqlite3.connect(str(path), timeout=0, check_same_thread=False,
                                           isolation_level=None)

    def read(self) -> int | None:
        try:
            row = self._connection.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:  # the file blinked; the sweep's own poll still runs
            log.debug("sqlite_watch_failed", error=str(exc))
            return None
        return int(row[0]) if row else None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection.close()


async def watch_sqlite(path: Path, wake: asyncio.Event, stack: AsyncExitStack) -> None:
    """Start watching ``path``; the watcher stops when ``stack`` closes."""
    try:
        version = DataVersion(path)
    except sqlite3.Error as exc:
        log.warning("sqlite_watch_unavailable", error=str(exc), fallback="polling")
        return
    task = asyncio.get_running_loop().create_task(_watch(version, wake))

    async def close() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        version.close()

    stack.push_async_callback(close)


async def _watch(version: DataVersion, wake: asyncio.Event) -> None:
    last = version.read()
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        current = version.read()
        if current is None:
            continue
        if last is not None and current != last:
            wake.set()
        last = current
