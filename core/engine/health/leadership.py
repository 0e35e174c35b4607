"""One active daemon per database (DESIGN §6).

PostgreSQL: the leader holds a session-level advisory lock on a dedicated connection;
standbys try it about once a second, so when the leader dies (its connection closes and
the server drops the lock) one of them takes over within seconds. A leader whose lock
connection breaks is told at once (``lost`` is set); the daemon then stops starting runs
and contends again as a standby. Losing the lock does not prove a daemon dead, so a new
leader frees no live lease (see core/engine/loops/recovery.py). Database outages are ridden
out: connections are retried with capped backoff, reported once per outage. SQLite: an exclusive
file lock next to the database file; a second daemon refuses to start, naming the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from core.db.urls import asyncpg_dsn
from core.engine.health.outage import DatabaseOutage, is_database_unavailable, reconnect_delay
from core.errors import GroupsyncError
from core.observability import get_logger

log = get_logger("groupsync.leadership")

ADVISORY_LOCK_KEY = 0x67726F7570  # "group" in ASCII: one lock per database
STANDBY_POLL_SECONDS = 1.0
HEALTH_CHECK_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 10.0


class AnotherDaemonRunning(GroupsyncError):
    """A second daemon on one SQLite file: refused, with the first one's pid."""


@asynccontextmanager
async def leadership(
    database_url: str,
    stop: asyncio.Event,
    outage: DatabaseOutage | None = None,
    time_scale: float = 1.0,
) -> AsyncIterator[asyncio.Event]:
    """Hold the leadership for the body; yields an event set if leadership is lost.
    Waits (standby) while another daemon leads, and through database outages of any
    length; returns early if ``stop`` is set."""
    if make_url(database_url).get_backend_name() == "sqlite":
        async with _sqlite_lock(database_url) as lost:
            yield lost
    else:
        async with _advisory_lock(
            database_url, stop, outage or DatabaseOutage(), time_scale
        ) as lost:
            yield lost


@asynccontextmanager
async def _sqlite_lock(database_url: str) -> AsyncIterator[asyncio.Event]:
    database = make_url(database_url).database or ""
    if database in ("", ":memory:"):
        yield asyncio.Event()
        return
    handle, path = _take_file_lock(database)
    log.info("leadership_acquired", backend="sqlite", lock_file=str(path))
    try:
        yield asyncio.Event()
    finally:
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _take_file_lock(database: str) -> tuple[IO[str], Path]:
    path = Path(database).resolve().with_name(Path(database).name + ".daemon.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "unknown"
        handle.close()
        raise AnotherDaemonRunning(
            f"another groupsync daemon (pid {other}) is already running on {database} "
            f"(lock file {path}); SQLite supports one daemon per database file: stop it "
            "first, or use PostgreSQL for a standby"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle, path


@asynccontextmanager
async def _advisory_lock(
    database_url: str, stop: asyncio.Event, outage: DatabaseOutage, time_scale: float
) -> AsyncIterator[asyncio.Event]:
    lost = asyncio.Event()
    connection = await _contend(database_url, stop, outage, time_scale)
    if connection is None:  # stopped while standing by
        yield lost
        return
    watchdog = asyncio.get_running_loop().create_task(_watch(connection, lost))

    def closed(_connection: Any) -> None:
        _lose(lost, "lock connection closed")

    connection.add_termination_listener(closed)  # a dropped connection is noticed at once
    try:
        yield lost
    finally:
        watchdog.cancel()
        connection.remove_termination_listener(closed)  # our own close is no loss
        await _close(connection)  # closing drops the lock


async def _contend(
    database_url: str, stop: asyncio.Event, outage: DatabaseOutage, time_scale: float
) -> Any | None:
    """Try the lock about once a second until we hold it (its connection is returned)
    or ``stop`` is set (None). A database that cannot be reached is one outage for
    ``outage`` to report; the connection is retried with capped backoff."""
    import asyncpg

    announced = False
    failures = 0
    while not stop.is_set():
        connection: Any = None
        try:
            connection = await asyncio.wait_for(
                asyncpg.connect(asyncpg_dsn(database_url)), timeout=CONNECT_TIMEOUT_SECONDS
            )
            while not stop.is_set():
                held = await connection.fetchval(
                    "SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY
                )
                outage.reachable()
                failures = 0
                if held:
                    log.info("leadership_acquired", backend="postgresql",
                             lock_key=ADVISORY_LOCK_KEY)
                    leading, connection = connection, None
                    return leading
                if not announced:
                    holder = await _lock_holder(connection)
                    log.info("standing_by", leader_pid=holder,
                             poll_seconds=STANDBY_POLL_SECONDS)
                    announced = True
                await _pause(stop, STANDBY_POLL_SECONDS)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            outage.failed(exc, where="leadership")
            await _pause(stop, reconnect_delay(failures, time_scale))
            failures += 1
        finally:
            if connection is not None:  # stopped, failed or cancelled while standing by
                connection.terminate()
    return None


async def _close(connection: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), timeout=5)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _lose(lost: asyncio.Event, why: str) -> None:
    if not lost.is_set():
        log.error("leadership_lost", error=why)
        lost.set()


async def _lock_holder(connection: Any) -> int | None:
    with contextlib.suppress(Exception):
        value = await connection.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND ((classid::bigint << 32) | objid::bigint) = $1",
            ADVISORY_LOCK_KEY,
        )
        return int(value) if value is not None else None
    return None


async def _watch(connection: Any, lost: asyncio.Event) -> None:
    """The lock lives exactly as long as the connection: if it breaks, we no longer lead."""
    while not lost.is_set():
        await asyncio.sleep(HEALTH_CHECK_SECONDS)
        try:
            await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout=5)
        except Exception as exc:
            _lose(lost, str(exc) or type(exc).__name__)
