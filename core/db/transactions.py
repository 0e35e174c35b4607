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

On SQLite there is one worker (thread and connection) per engine, made on first use and
kept as long as the engine: every caller that has the engine has it, and SQLite's writes
from it go through one connection. ``engine.dispose()`` closes that connection once the
transactions queued before it are done, waiting for them without blocking the event loop
(the next transaction opens it again, as the engine's own pool does). A worker stops
when its engine is garbage collected, or at interpreter exit once its queue is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util.concurrency import await_, in_greenlet

from core.db.session import sqlite_pragmas

T = TypeVar("T")


class Transactions:
    """Runs ``work(connection)`` in a transaction of its own, committed when it returns.

    On SQLite the transaction runs to its end in the worker thread even if the awaiting
    task is cancelled meanwhile: a caller whose write must not outlive it (a claim) gives
    back what it took (see ``core.engine.running.state.claim``)."""

    def __init__(self, engine: AsyncEngine, worker: _Worker | None = None) -> None:
        self._engine = engine
        self._worker = worker

    @property
    def statements_engine(self) -> Engine:
        """The engine the statements run on (what a test listens to for them)."""
        return self._worker.sync if self._worker is not None else self._engine.sync_engine

    async def run(self, work: Callable[[Connection], T]) -> T:
        if self._worker is None:
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        return await asyncio.get_running_loop().run_in_executor(
            self._worker.thread, self._worker.in_transaction, work)


class _Worker:
    """One SQLite engine's thread and plain ``sqlite3`` connection. It holds no reference
    to the async engine, so that engine can be collected (and stop it)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sync = create_sync_engine(
            engine.url.set(drivername="sqlite+pysqlite"),
            # Opened and used by the one worker thread only.
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=1, max_overflow=0,
        )
        event.listen(self.sync, "connect", sqlite_pragmas)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="groupsync-db")

    def in_transaction(self, work: Callable[[Connection], T]) -> T:
        with self.sync.begin() as connection:
            return work(connection)

    def close_connection(self) -> None:
        """Closes the connection once the transactions already asked for are done. From
        ``AsyncEngine.dispose`` (SQLAlchemy's greenlet) it waits for them on the running
        event loop: a queued transaction may be waiting for a lock that an async-driver
        connection gives up only when the loop runs its commit. Blocking the loop's
        thread instead held a benchmark's shutdown for the 30 s busy timeout of each."""
        try:
            closed = self.thread.submit(self.sync.dispose)
        except RuntimeError:  # the worker already stopped
            return
        if in_greenlet():
            await_(asyncio.wrap_future(closed))

    def stop(self) -> None:
        """The engine's finalizer: like ``close_connection`` but never waits, since a
        finalizer runs wherever the collector happens to (a greenlet too)."""
        with contextlib.suppress(RuntimeError):
            self.thread.submit(self.sync.dispose)
        self.thread.shutdown(wait=False)


_WORKERS: weakref.WeakKeyDictionary[AsyncEngine, _Worker] = weakref.WeakKeyDictionary()


def transactions_of(engine: AsyncEngine) -> Transactions:
    """The engine's ``Transactions``; on SQLite with its one worker, made on first use."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return Transactions(engine)
    worker = _WORKERS.get(engine)
    if worker is None:
        worker = _WORKERS[engine] = _Worker(engine)
        event.listen(engine.sync_engine, "engine_disposed",
                     lambda _engine, made=worker: made.close_connection())
        weakref.finalize(engine, worker.stop)
    return Transactions(engine, worker)
