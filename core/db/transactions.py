"""Small Core transactions in one thread hop on SQLite.

aiosqlite runs every call (cursor, execute, fetch, close, commit) on its connection's
thread and wakes the event loop after each one, so a two-statement transaction is about
eight hops, each a queue put, a futex wake and a write to the loop's self-pipe. On the
engine's hot path (every claim, every record) and in an idle daemon's own writes (the
heartbeat, every two seconds) those hops were most of the CPU (issue 26). Here the whole
transaction is one function, run on a plain ``sqlite3`` connection in one worker thread:
one hop there, one back.

PostgreSQL keeps its async driver: the same function runs inside ``run_sync`` there
(asyncpg has no thread to hop to). The function is ordinary synchronous Core on a
``Connection``, so one definition serves both databases.

One ``Transactions`` per engine (``transactions_of``), made on first use and closed when
the engine is disposed: it belongs to the engine as its pool does, so every caller that
has the engine has it, and SQLite's writes from it go through one connection.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.session import sqlite_pragmas

T = TypeVar("T")


class Transactions:
    """Runs ``work(connection)`` in a transaction of its own, committed when it returns.

    On SQLite the transaction runs to its end in the worker thread even if the awaiting
    task is cancelled meanwhile: a caller whose write must not outlive it (a claim) gives
    back what it took (see ``core.engine.running.state.claim``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._sync = create_sync_engine(
                engine.url.set(drivername="sqlite+pysqlite"),
                # Opened and used by the one worker thread; disposed from the loop's.
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=1, max_overflow=0,
            )
            event.listen(self._sync, "connect", sqlite_pragmas)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="groupsync-db")

    @property
    def statements_engine(self) -> Engine:
        """The engine the statements run on (what a test listens to for them)."""
        return self._sync if self._sync is not None else self._engine.sync_engine

    async def run(self, work: Callable[[Connection], T]) -> T:
        if self._sync is None or self._thread is None:
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._in_transaction, work)

    def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.begin() as connection:
            return work(connection)

    def close(self) -> None:
        """After the last ``run``: waits for one in flight, then closes the connection."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._sync is not None:
            self._sync.dispose()


_BY_ENGINE: weakref.WeakKeyDictionary[AsyncEngine, Transactions] = weakref.WeakKeyDictionary()


def transactions_of(engine: AsyncEngine) -> Transactions:
    """The engine's ``Transactions``: made on first use, closed by ``engine.dispose()``."""
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = _BY_ENGINE[engine] = Transactions(engine)

        def disposed(_engine: Any) -> None:
            gone = _BY_ENGINE.pop(engine, None)
            if gone is not None:
                gone.close()

        event.listen(engine.sync_engine, "engine_disposed", disposed)
    return found
