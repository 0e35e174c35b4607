"""The daemon as a real process: crash recovery, outbox pickup, standby, shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.db.models import SyncStatus
from core.db.session import SessionFactory
from core.group_joining import request_group_sync
from tests.engine.conftest import Fakes, row
from tests.engine.daemon_process import Daemon
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

G = 31

DaemonMaker = Callable[..., Daemon]


@pytest.fixture
def daemon(database_url: str, fakes: Fakes, tmp_path: Path) -> Iterator[DaemonMaker]:
    started: list[Daemon] = []

    def start(**env: str) -> Daemon:
        process = Daemon(database_url, fakes.root, tmp_path / f"daemon{len(started)}.log", **env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


async def started(process: Daemon, timeout: float = 60) -> None:
    def up() -> bool:
        assert process.process.poll() is None, process.output()[-3000:]
        return bool(process.events("daemon_started"))

    await wait_for(up, timeout=timeout, interval=0.05, message="daemon_started")


async def request(session_factory: SessionFactory, group_id: int) -> float:
    async with session_factory() as session, session.begin():
        await request_group_sync(session, group_id)
    return time.time()


async def test_sigkilled_daemon_resumes_owed_retries_with_their_attempts(
    daemon: DaemonMaker, fakes: Fakes, session_factory: SessionFactory
) -> None:
    # Given a daemon retrying a failing key
    fakes.set(f"discord:{G}", "raise")
    first = daemon()
    await started(first)
    await request(session_factory, G)

    async def failed_a_few_times() -> bool:
        return (await row(session_factory, "discord", G)).attempt >= 4

    await wait_for(failed_a_few_times, message="four failures")

    # When it is killed, then restarted
    first.kill()
    attempts_at_death = (await row(session_factory, "discord", G)).attempt
    second = daemon()
    await started(second)
    await wait_for(lambda: bool(second.events("sync_failed")), message="a retry after restart")

    # Then the backoff continued where it was, not from attempt 0
    (rearmed,) = second.events("retries_rearmed")
    assert rearmed["count"] >= 1
    assert second.events("sync_failed")[0]["attempt"] == attempts_at_death + 1
    assert second.events("sync_failed")[0]["sync_type"] == "discord"

    # And once the service recovers the key converges
    fakes.set(f"discord:{G}", "ok")

    async def ok() -> bool:
        return (await row(session_factory, "discord", G)).status == SyncStatus.OK

    await wait_for(ok, message="success after restart")


async def test_a_committed_change_is_synced_without_sync_after_group_change(
    daemon: DaemonMaker, fakes: Fakes, session_factory: SessionFactory, database_url: str
) -> None:
    # On PostgreSQL polling is made slow, so only the NOTIFY can explain a quick pickup
    postgres = database_url.startswith("postgresql")
    process = daemon(OUTBOX_POLL_SECONDS="30" if postgres else "0.2")
    await started(process)

    committed = await request(session_factory, G)  # and the "application" goes away

    await wait_for(lambda: len(fakes.runs(group=G)) == 4, message="all four syncs")
    first_start = min(r["start"] for r in fakes.runs(group=G))
    assert first_start - committed < (1.0 if postgres else 1.5)

    async def all_recorded() -> bool:  # a run is logged by the syncer before it is recorded
        rows = [
            await row(session_factory, t, G) for t in ("discord", "calendar", "reminders", "rsvps")
        ]
        return all(r.completed_generation == r.requested_generation for r in rows)

    await wait_for(all_recorded, message="all four syncs recorded as done")


async def test_sigterm_leaves_in_flight_keys_owed_and_exits_cleanly(
    daemon: DaemonMaker, fakes: Fakes, session_factory: SessionFactory
) -> None:
    fakes.set(f"calendar:{G}", "ok", sleep=60)
    process = daemon()
    await started(process)
    await request(session_factory, G)

    async def running() -> bool:
        return (await row(session_factory, "calendar", G)).status == SyncStatus.RUNNING

    await wait_for(running, message="the calendar sync to be in flight")
    code, took = process.terminate()

    assert (code, took < 10) == (0, True), process.output()[-2000:]
    state = await row(session_factory, "calendar", G)
    assert state.requested_generation > state.completed_generation
    assert (state.lease_owner, state.status) == (None, SyncStatus.PENDING)


async def test_second_daemon_on_one_sqlite_file_refuses(
    daemon: DaemonMaker, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL daemons stand by instead")
    first = daemon()
    await started(first)

    second = daemon()
    code = second.process.wait(90)  # a loaded machine may take half a minute to start it

    assert code == 1
    assert f"another groupsync daemon (pid {first.pid}) is already running" in second.output()
    assert first.process.poll() is None


async def test_two_postgres_daemons_never_overlap_and_standby_takes_over(
    daemon: DaemonMaker, fakes: Fakes, session_factory: SessionFactory, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite refuses a second daemon")
    fakes.set("*", "ok", sleep=0.05)
    fakes.set(f"discord:{G}", "raise", sleep=0.05)  # keeps a retry owed across failover
    a, b = daemon(), daemon()
    await wait_for(
        lambda: bool(a.events("daemon_started") or b.events("daemon_started")),
        timeout=60,
        message="a leader",
    )
    leader, standby = (a, b) if a.events("daemon_started") else (b, a)
    await wait_for(lambda: bool(standby.events("standing_by")), message="a standby")
    for group in range(100, 106):
        await request(session_factory, group)
    await request(session_factory, G)
    await wait_for(lambda: len(fakes.runs(group=105)) == 4, message="first batch synced")
    await wait_for(lambda: len(fakes.runs("discord", G)) >= 2, message="a failing key")

    # When the leader is killed
    leader.kill()
    killed_at = time.monotonic()
    await wait_for(
        lambda: bool(standby.events("daemon_started")),
        timeout=15,
        message="the standby to take over",
    )
    took_over = time.monotonic() - killed_at
    for group in range(200, 204):
        await request(session_factory, group)
    await wait_for(lambda: len(fakes.runs(group=203)) == 4, message="second batch synced")
    attempts_before = len(fakes.runs("discord", G))
    await wait_for(
        lambda: len(fakes.runs("discord", G)) > attempts_before + 2,
        message="the owed retry to continue on the new leader",
    )

    # Then it took over within 10 s, and no key ever ran in two places at once
    assert took_over < 10
    assert {r["pid"] for r in fakes.runs("discord", G)} == {leader.pid, standby.pid}
    runs = sorted(fakes.runs(), key=lambda r: r["start"])
    for i, run in enumerate(runs):
        for other in runs[i + 1 :]:
            if (other["type"], other["group"]) == (run["type"], run["group"]):
                assert other["start"] >= run["end"] or other["pid"] == run["pid"], (run, other)
