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

The worker commits what queued up while it was busy as one SQLite transaction (group
commit): under load one fsync serves a batch of claims and records instead of one each,
and one wake-up of the loop hands their results back. A job that raises is taken out and
the rest of its batch run again without it, so a job's work must be safe to run twice
(plain statements on the connection: everything here is).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import await_, in_greenlet

from core.db.session import sqlite_pragmas

T = TypeVar("T")
# Transactions queued while the worker was committing go in its next commit together: on
# SQLite each commit is an fsync of the WAL, and one per claim and one per record was most
# of a drain's time (issue 26). Bounded so one batch cannot hold the write lock for long.
BATCH_LIMIT = 64


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
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # In the caller's context, as run_sync's greenlet is: a run's trace notes and its
        # log fields reach what the work records from the worker thread.
        context = contextvars.copy_context()
        self._worker.submit(_Job(lambda connection: context.run(work, connection), future))
        return await future


def with_session(work: Callable[[Session], T]) -> Callable[[Connection], T]:
    """``work`` on an ORM session joined to the connection's transaction, for
    ``Transactions.run``: its changes are flushed when it returns, and committing or
    rolling back stays the transaction's (``rollback_only``: a failed flush rolls back
    the transaction, or the batch's savepoint, it was given)."""

    def in_session(connection: Connection) -> T:
        with Session(bind=connection, join_transaction_mode="rollback_only") as session:
            result = work(session)
            session.flush()
            return result

    return in_session


@dataclass(frozen=True)
class _Job:
    work: Callable[[Connection], Any]
    future: asyncio.Future[Any]  # of the caller's loop; settled only after the commit


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
        # pysqlite's own BEGIN comes late (before the first write), after a batch's first
        # reads: the driver leaves transactions to us, and we begin them.
        event.listen(self.sync, "connect", _no_implicit_transactions)
        event.listen(self.sync, "begin", _begin_immediate)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="groupsync-db")
        self._jobs: deque[_Job] = deque()

    def submit(self, job: _Job) -> None:
        self._jobs.append(job)
        # One drain per job, in order: by the time the last job's drain has run, every job
        # queued before it has been committed (or failed), even when an earlier drain took
        # it in its batch. What queues behind them on the thread (dispose) waits for them.
        self.thread.submit(self._drain)

    def _drain(self) -> None:
        batch: list[_Job] = []
        with contextlib.suppress(IndexError):
            while len(batch) < BATCH_LIMIT:
                batch.append(self._jobs.popleft())
        if batch:
            _deliver(self._commit(batch))

    def _commit(self, batch: list[_Job]) -> list[tuple[_Job, bool, Any]]:
        """The batch's transactions in one SQLite transaction (``BEGIN IMMEDIATE``: the
        write lock first, so no statement of it can fail to upgrade a read lock). A job
        that raises is taken out, its caller gets the error, and the rest are run again
        without it: the others commit together, none seeing what it wrote. (A savepoint
        around each job did the same at two more statements a job, a quarter of the
        worker's time.) Nothing is settled before COMMIT has returned, so a caller never
        sees a write that could still be rolled back."""
        failed: list[tuple[_Job, bool, Any]] = []
        while batch:
            results: list[Any] = []
            working = False
            try:
                with self.sync.begin() as connection:
                    working = True
                    for job in batch:
                        results.append(job.work(connection))
                    working = False
            except Exception as exc:
                if not working:  # BEGIN or COMMIT failed: none landed
                    return failed + [(job, False, exc) for job in batch]
                failing = batch[len(results)]
                failed.append((failing, False, exc))
                batch = [job for job in batch if job is not failing]
                continue
            return failed + [(job, True, result)
                             for job, result in zip(batch, results, strict=True)]
        return failed

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


def _deliver(outcomes: list[tuple[_Job, bool, Any]]) -> None:
    """Hand a committed batch's results back: one wake-up of each caller's loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, bool, Any]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].future.get_loop(), []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_settle, settled)


def _settle(outcomes: list[tuple[_Job, bool, Any]]) -> None:
    for job, ok, value in outcomes:
        if job.future.done():  # its caller was cancelled; the write stands (see run)
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)


def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


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
