"""The SQLite hand-off watcher: a commit by another process wakes the sweep; an idle
file costs nothing (issue 26: a 40 Hz poll was most of an idle daemon's CPU)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from core.engine.loops import wakeup


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "groupsync.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE owed (id INTEGER PRIMARY KEY)")
    yield path
    connection.close()


def commit_elsewhere(path: Path) -> None:
    """An application process handing a key off: its own connection, one commit."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("INSERT INTO owed DEFAULT VALUES")
    finally:
        connection.close()


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    reads: list[int | None] = []
    original = wakeup.DataVersion.read

    def counted(self: wakeup.DataVersion) -> int | None:
        reads.append(value := original(self))
        return value

    monkeypatch.setattr(wakeup.DataVersion, "read", counted)
    return reads


async def test_a_commit_by_another_process_wakes_the_sweep(database: Path) -> None:
    wake = asyncio.Event()
    async with AsyncExitStack() as stack:
        await wakeup.watch_sqlite(database, wake, stack)
        commit_elsewhere(database)
        await asyncio.wait_for(wake.wait(), timeout=5)


async def test_an_idle_database_is_not_polled(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a watched database nobody writes to, beside a log file that is written
    reads = count_reads(monkeypatch)
    wake = asyncio.Event()
    async with AsyncExitStack() as stack:
        await wakeup.watch_sqlite(database, wake, stack)
        for _ in range(5):
            with (database.parent / "daemon.log").open("a") as log:
                log.write("a line\n")
            await asyncio.sleep(0.06)

    # Then the watcher looked at the database once, at its start, and never woke the sweep
    assert len(reads) == 1
    assert not wake.is_set()


async def test_without_inotify_the_watcher_polls_and_still_wakes(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakeup.FileChanges, "open", classmethod(lambda cls, path: None))
    wake = asyncio.Event()
    async with AsyncExitStack() as stack:
        await wakeup.watch_sqlite(database, wake, stack)
        commit_elsewhere(database)
        await asyncio.wait_for(wake.wait(), timeout=5)


@pytest.fixture
def schema(tmp_path: Path) -> Path:
    """A database at the head of the migrations: the wake clock and its triggers."""
    from core.db.migrate import upgrade

    path = tmp_path / "schema.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def write_elsewhere(path: Path, statement: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(statement)
    finally:
        connection.close()


async def test_the_daemons_own_heartbeats_wake_nothing_but_a_hand_off_does(schema: Path) -> None:
    """Measured before: every heartbeat of the daemon changed the file's commit counter
    and woke its sweep and bulk worker (an idle SQLite daemon at 1.3 % of a core)."""
    wake = asyncio.Event()
    async with AsyncExitStack() as stack:
        assert await wakeup.watch_sqlite(schema, wake, stack)
        for beat in range(3):  # heartbeats and a history flush, as the daemon writes them
            write_elsewhere(schema, "INSERT OR REPLACE INTO daemon_heartbeats (id, host, pid, "
                            "role, since, last_heartbeat, clients) VALUES ('me', 'h', 1, "
                            f"'active', '2026-12-03 10:00:00', '2026-12-03 10:00:0{beat}', "
                            "'[]')")
            await asyncio.sleep(0.4)  # past every look-again after the write
        assert not wake.is_set()

        write_elsewhere(schema, "INSERT INTO sync_state (sync_type, group_id, status, "
                        "requested_generation, completed_generation, attempt, "
                        "sentry_reported_level, updated_at) VALUES ('discord', 1, 'pending', "
                        "1, 0, 0, 0, '2026-12-03 10:00:00')")
        await asyncio.wait_for(wake.wait(), timeout=5)
