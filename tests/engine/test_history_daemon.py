"""History kept in SQL (issue 23), against real daemons: after an hour of scaled activity
the API's series match what the database holds for the same minutes, and a restarted
daemon shows the same."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.db.models import SyncAttempt, SyncState
from core.db.session import SessionFactory
from core.group_joining import request_group_sync
from core.history.grid import EPOCH, MICRO, Grid
from tests.engine.conftest import Fakes
from tests.engine.daemon_process import Daemon
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

SCALE = 0.005  # a minute is 0.3 s, an hour 18 s
TOKEN = "history-test-token-0123456789"
GROUPS = range(1, 7)


@pytest.fixture
def daemons(database_url: str, fakes: Fakes, tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for process in started:
        process.close()


def start(daemons: list[Daemon], database_url: str, fakes: Fakes, tmp_path: Path) -> Daemon:
    process = Daemon(database_url, fakes.root, tmp_path / f"daemon{len(daemons)}.log",
                     TIME_SCALE=str(SCALE), ADMIN_TOKEN=TOKEN)
    daemons.append(process)
    return process


async def admin_url(process: Daemon) -> str:
    def listening() -> str | None:
        assert process.process.poll() is None, process.output()[-3000:]
        events = process.events("admin_api_listening")
        return str(events[0]["url"]) if events else None

    url: str = await wait_for(listening, timeout=60, interval=0.05, message="admin API")
    return url


async def series(url: str, name: str, range_name: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.get(f"{url}/api/history", params={
            "series": name, "range": range_name},
            headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    (found,) = response.json()["series"]
    return dict(found)


def step_start(at: datetime, step_us: int) -> datetime:
    return EPOCH + MICRO * (((at - EPOCH) // MICRO) // step_us * step_us)


async def attempts_per_step(sessions: SessionFactory, step_us: int
                            ) -> Counter[tuple[datetime, str]]:
    async with sessions() as session:
        rows = (await session.execute(
            select(SyncAttempt.at, SyncAttempt.sync_type, SyncAttempt.outcome))).all()
    return Counter((step_start(at, step_us), f"{t}:{o}") for at, t, o in rows)


def rollup_per_step(found: dict[str, Any]) -> Counter[tuple[datetime, str]]:
    return Counter({(datetime.fromisoformat(p["at"]), label): int(v)
                    for p in found["points"] for label, v in p["values"].items() if v})


async def nothing_owed(sessions: SessionFactory) -> bool:
    async with sessions() as session:
        owed = await session.scalar(select(func.count()).where(
            SyncState.requested_generation > SyncState.completed_generation))
    return owed == 0


async def test_an_hour_of_runs_in_the_api_matches_the_attempt_rows_and_survives_a_restart(
    daemons: list[Daemon], database_url: str, fakes: Fakes, tmp_path: Path,
    session_factory: SessionFactory,
) -> None:
    grid = Grid(SCALE)
    minute_us = grid.minute_us
    # Given a daemon, a key failing for the first third of the hour, and changes to six
    # groups every few scaled minutes
    fakes.set("discord:1", "raise")
    first = start(daemons, database_url, fakes, tmp_path)
    url = await admin_url(first)
    loop = asyncio.get_running_loop()
    began = loop.time()
    hour = 3600 * SCALE
    n = 0
    while loop.time() - began < hour:
        if loop.time() - began > hour / 3:
            fakes.set("discord:1", "ok")
        async with session_factory() as session, session.begin():
            await request_group_sync(session, GROUPS[n % len(GROUPS)])
        n += 1
        await asyncio.sleep(hour / 80)
    await wait_for(lambda: nothing_owed(session_factory), timeout=60, message="all applied")
    async with session_factory() as session:
        last = await session.scalar(select(func.max(SyncAttempt.at)))
    assert last is not None
    settled = grid.start(last) + 2 * grid.width("minute")

    async def flushed_past_the_last_run() -> bool:
        owed = await series(url, "owed", "1h")
        return any(datetime.fromisoformat(p["at"]) >= settled and p["values"].get("discord")
                   is not None for p in owed["points"])

    await wait_for(flushed_past_the_last_run, timeout=60, interval=0.1, message="a flush after")

    # Then the last hour's runs per minute are the attempt rows per minute
    runs = await series(url, "runs", "1h")
    shown = rollup_per_step(runs)
    window = {datetime.fromisoformat(p["at"]) for p in runs["points"]}
    in_db = await attempts_per_step(session_factory, minute_us)
    assert sum(shown.values()) > 100
    assert shown == Counter({k: v for k, v in in_db.items() if k[0] in window})
    assert any(label.startswith("discord:") and not label.endswith(":ok")
               for label in runs["labels"])  # the failures are their own line
    latency = await series(url, "latency", "1h")
    assert latency["totals"]["p50"] > 0
    assert latency["totals"]["p99"] >= latency["totals"]["p50"]

    # When the daemon is restarted
    first.terminate()
    second = start(daemons, database_url, fakes, tmp_path)
    url = await admin_url(second)

    # Then the same minutes show the same counts (24 h: quarter hours, all of them)
    day = rollup_per_step(await series(url, "runs", "24h"))
    assert day == await attempts_per_step(session_factory, minute_us * 15)
    again = rollup_per_step(await series(url, "runs", "1h"))
    assert all(shown[k] == v for k, v in again.items() if k[0] <= settled)
