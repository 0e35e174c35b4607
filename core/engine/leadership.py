"""One active daemon per database (DESIGN §6).

PostgreSQL: the leader holds a session-level advisory lock on a dedicated connection;
standbys try it about once a second, so when the leader dies (its connection closes and
the server drops the lock) one of them takes over within seconds. SQLite: an exclusive
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

from core.errors import GroupsyncError
from core.observability import get_logger

log = get_logger("groupsync.leadership")

ADVISORY_LOCK_KEY = 0x67726F7570  # "group" in ASCII: one lock per database
STANDBY_POLL_SECONDS = 1.0
HEALTH_CHECK_SECONDS = 2.0


class AnotherDaemonRunning(GroupsyncError):
    """A second daemon on one SQLite file: refused, with the first one's pid."""


def asyncpg_dsn(database_url: str) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    return str(url.render_as_string(hide_password=False))


@asynccontextmanager
async def leadership(database_url: str, stop: asyncio.Event) -> AsyncIterator[asyncio.Event]:
    """Hold the leadership for the body; yields an event set if leadership is lost.
    Waits (standby) while another daemon leads; returns early if ``stop`` is set."""
    if make_url(database_url).get_backend_name() == "sqlite":
        async with _sqlite_lock(database_url) as lost:
            yield lost
    else:
        async with _advisory_lock(database_url, stop) as lost:
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
async def _advisory_lock(database_url: str, stop: asyncio.Event) -> AsyncIterator[asyncio.Event]:
    import asyncpg

    connection: Any = await asyncpg.connect(asyncpg_dsn(database_url))
    lost = asyncio.Event()
    watchdog: asyncio.Task[None] | None = None
    try:
        announced = False
        while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
            if not announced:
                holder = await _lock_holder(connection)
                log.info("standing_by", leader_pid=holder, poll_seconds=STANDBY_POLL_SECONDS)
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=STANDBY_POLL_SECONDS)
            if stop.is_set():
                yield lost
                return
        log.info("leadership_acquired", backend="postgresql", lock_key=ADVISORY_LOCK_KEY)
        watchdog = asyncio.get_running_loop().create_task(_watch(connection, lost))
        yield lost
    finally:
        if watchdog is not None:
            watchdog.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), timeout=5)  # closing drops the lock


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
    while True:
        await asyncio.sleep(HEALTH_CHECK_SECONDS)
        try:
            await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout=5)
        except Exception as exc:
            log.error("leadership_lost", error=str(exc))
            lost.set()
            return
