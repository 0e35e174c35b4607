"""aiosqlite's ``stop()`` made idempotent, so a close in flight always returns.

SQLAlchemy terminates an aiosqlite connection an interrupted operation left behind
(a run cancelled twice, say: by its lease renewer, then at shutdown) by starting a
graceful ``close()`` in a shielded task and, if it is cancelled meanwhile, force-closing
with ``stop()``. The thread then runs the close, then stop's sentinel, and ends; the
close's own ``finally`` calls ``stop()`` a second time and awaits a future no thread
will ever resolve. That task stays pending for good, so ``asyncio.run`` (the daemon's
exit, a test's loop) waits for it forever: a CI worker was killed at 120 s that way.
aiosqlite 0.22.1 and SQLAlchemy 2.1.9, the latest releases, both still do this.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite

_ORIGINAL_STOP = aiosqlite.Connection.stop


def _stop_once(self: aiosqlite.Connection) -> asyncio.Future[Any] | None:
    if not self._running:  # already stopping: its thread ends after the first sentinel
        return None
    return _ORIGINAL_STOP(self)


def install() -> None:
    """Idempotent; called by ``create_engine`` for SQLite."""
    aiosqlite.Connection.stop = _stop_once  # type: ignore[method-assign]
