"""Daemons (real processes) against PostgreSQL through a proxy the test can take down:
outages of any length are ridden out, with one log line pair each, and leadership moves
without two processes ever running one key at once.

The outage is 30 s of real wall time (OUTAGE_SECONDS), as an operator would meet it:
longer than the lease (2 s here), the leader's health check and the connection pool's
own 30 s checkout timeout, so every in-flight run loses its lease and the leader loses its
lock. TIME_SCALE 0.2 only shortens the engine's own waits (backoff, reconnect pacing).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from core.db.models import SyncState
from core.db.session import SessionFactory
from core.engine.health.leadership import ADVISORY_LOCK_KEY, asyncpg_dsn
from core.group_joining import request_group_sync
from tests.engine.conftest import Fakes
from tests.engine.daemon_process import Daemon
from tests.engine.db_proxy import DatabaseProxy
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

OUTAGE_SECONDS = 30.0
TIME_SCALE = "0.2"
GROUPS = range(61, 69)
QUIET_EVENTS = {"sync_run_crashed", "outbox_sweep_failed", "heartbeat_failed",
                "bulk_step_failed", "sweep_crashed"}


@pytest.fixture
def proxy(database_url: str) -> Iterator[DatabaseProxy]:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no server to lose")
    running = DatabaseProxy(database_url).start(listening=False)
    yield running
    running.close()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for process in started:
        process.close()


def _daemon(started: list[Daemon], proxy: DatabaseProxy, fakes: Fakes, tmp_path: Path,
            **env: str) -> Daemon:
    process = Daemon(proxy.database_url, fakes.root, tmp_path / f"d{len(started)}.log", **env)
    started.append(process)
    return process


async def _all_converged(session_factory: SessionFactory) -> bool:
    async with session_factory() as session:
        rows = (await session.execute(select(SyncState))).scalars().all()
    return bool(rows) and all(r.completed_generation == r.requested_generation for r in rows)


async def _stream_of_changes(session_factory: SessionFactory, stop: asyncio.Event) -> int:
    """The application keeps committing membership changes (through its own connection,
    which the outage does not cut) every 50 ms."""
    count = 0
    while not stop.is_set():
        async with session_factory() as session, session.begin():
            await request_group_sync(session, GROUPS[count % len(GROUPS)])
        count += 1
        await asyncio.sleep(0.05)
    return count


def _noise(process: Daemon) -> list[dict[str, Any]]:
    return [e for e in process.events() if e.get("event") in QUIET_EVENTS]


async def test_a_long_outage_under_a_stream_of_changes_is_ridden_out(
    proxy: DatabaseProxy, daemons: list[Daemon], fakes: Fakes,
    session_factory: SessionFactory, tmp_path: Path,
) -> None:
    # Given an active daemon and a standby, and an application committing changes
    proxy.up()
    fakes.set("*", "ok", sleep=0.05)
    a = _daemon(daemons, proxy, fakes, tmp_path, TIME_SCALE=TIME_SCALE)
    b = _daemon(daemons, proxy, fakes, tmp_path, TIME_SCALE=TIME_SCALE)
    await wait_for(lambda: bool(a.events("daemon_started") or b.events("daemon_started"))
                   and bool(a.events("standing_by") or b.events("standing_by")),
                   timeout=120, message="a leader and a standby")
    stop = asyncio.Event()
    stream = asyncio.create_task(_stream_of_changes(session_factory, stop))
    await wait_for(lambda: len(fakes.runs()) >= 16, message="work before the outage")

    # When the database is unreachable for a while
    proxy.down()
    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself: real time is the point here
    runs_before = len(fakes.runs())
    proxy.up()
    back_at = time.time()

    # Then work resumes within seconds
    await wait_for(lambda: any(r["start"] > back_at for r in fakes.runs()), timeout=30,
                   message="a sync after the database returned")
    resumed_after = min(r["start"] for r in fakes.runs() if r["start"] > back_at) - back_at
    await wait_for(lambda: len(fakes.runs()) > runs_before + 16, message="more work")
    stop.set()
    changes = await stream
    await wait_for(lambda: _all_converged(session_factory), timeout=60,
                   message="every change converged")

    # And both daemons are still running, each logged the outage once, and nothing else
    assert a.process.poll() is None, a.output()[-3000:]
    assert b.process.poll() is None, b.output()[-3000:]
    for process in (a, b):
        assert len(process.events("database_unavailable")) == 1, process.output()[-3000:]
        (ended,) = process.events("database_available")
        assert ended["outage_seconds"] >= OUTAGE_SECONDS - 1
        assert _noise(process) == []
        assert "Traceback" not in process.output()
    assert resumed_after < 15
    assert changes > 100
    assert {r["group"] for r in fakes.runs() if r["start"] > back_at} >= set(GROUPS) - {0}


async def test_a_daemon_started_with_the_database_down_starts_working_when_it_appears(
    proxy: DatabaseProxy, daemons: list[Daemon], fakes: Fakes,
    session_factory: SessionFactory, tmp_path: Path,
) -> None:
    # Given a daemon started while the database refuses connections (TIME_SCALE 0.01:
    # "once a minute" is every 0.6 s)
    process = _daemon(daemons, proxy, fakes, tmp_path)
    await wait_for(lambda: len(process.events("waiting_for_database")) >= 2, timeout=90,
                   message="the daemon to say twice that it waits")
    assert process.process.poll() is None

    # When the database appears and a change is committed
    proxy.up()
    async with session_factory() as session, session.begin():
        await request_group_sync(session, 71)

    # Then it starts and syncs it, having said it waited (once a minute) and nothing else
    await wait_for(lambda: len(fakes.runs(group=71)) == 4, timeout=90, message="the sync")
    waits = process.events("waiting_for_database")
    gaps = [b["timestamp"] > a["timestamp"] for a, b in itertools.pairwise(waits)]
    assert all(gaps)
    assert len(process.events("database_unavailable")) == 1
    assert len(process.events("database_available")) == 1
    assert "Traceback" not in process.output()


async def test_a_leader_whose_lock_connection_drops_stands_by_and_no_key_runs_twice(
    proxy: DatabaseProxy, daemons: list[Daemon], fakes: Fakes,
    session_factory: SessionFactory, tmp_path: Path, database_url: str,
) -> None:
    # Given a leader in the middle of a slow run, and a standby (in-flight runs may take
    # 10 s to finish when a term ends)
    proxy.up()
    fakes.set("*", "ok", sleep=0.05)
    fakes.set("discord:81", "ok", sleep=4)
    a = _daemon(daemons, proxy, fakes, tmp_path, SHUTDOWN_TIMEOUT_SECONDS="10")
    b = _daemon(daemons, proxy, fakes, tmp_path, SHUTDOWN_TIMEOUT_SECONDS="10")
    await wait_for(lambda: bool(a.events("daemon_started") or b.events("daemon_started"))
                   and bool(a.events("standing_by") or b.events("standing_by")),
                   timeout=120, message="a leader and a standby")
    leader, standby = (a, b) if a.events("daemon_started") else (b, a)
    async with session_factory() as session, session.begin():
        await request_group_sync(session, 81)

    async def slow_run_started() -> bool:
        async with session_factory() as session:
            owner = await session.scalar(select(SyncState.lease_owner).where(
                SyncState.sync_type == "discord", SyncState.group_id == 81))
        return owner is not None

    await wait_for(slow_run_started, message="the slow run to hold its lease")

    # When the leader's lock connection is terminated (the daemon itself lives on)
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await admin.execute(
            # This test's database only: other tests' leaders hold the same key in theirs.
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND ((classid::bigint << 32) | objid::bigint) = $1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            ADVISORY_LOCK_KEY,
        )
    finally:
        await admin.close()
    async with session_factory() as session, session.begin():
        await request_group_sync(session, 81)  # a change while the slow run is in flight

    # Then the standby takes over, the old leader stands by, and the key converges
    await wait_for(lambda: len(standby.events("daemon_started")) == 1, timeout=60,
                   message="the standby to take over")
    await wait_for(lambda: len(leader.events("standing_by")) >= 1, timeout=60,
                   message="the old leader to stand by")
    await wait_for(lambda: _all_converged(session_factory), timeout=60, message="convergence")
    assert leader.process.poll() is None
    assert leader.events("leadership_lost")
    # No key ever ran in two processes at once
    runs = sorted(fakes.runs(), key=lambda r: r["start"])
    for i, run in enumerate(runs):
        for other in runs[i + 1:]:
            if (other["type"], other["group"]) == (run["type"], run["group"]):
                assert other["start"] >= run["end"] or other["pid"] == run["pid"], (run, other)
    # The old leader finished its run under its lease; the new one ran the key after it
    slow = sorted(fakes.runs("discord", 81), key=lambda r: r["start"])
    assert [r["pid"] for r in slow[:2]] == [leader.pid, standby.pid]
    assert slow[1]["start"] >= slow[0]["end"]
