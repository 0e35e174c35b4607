"""The benchmarks' own set-up runs: a bench that crashes before measuring reports nothing,
and nothing else would notice (idle_cpu and scheduler_overhead wrote ``SyncType.value``
for months after sync types became registry names)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from sqlalchemy import func, select

from bench import idle_cpu, interactive, scheduler_overhead
from core.db.migrate import upgrade
from core.db.models import SyncState
from core.db.session import create_engine, create_session_factory
from core.syncers.types import names


async def test_idle_cpu_writes_its_owed_retries_for_every_registered_type(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    await idle_cpu.write_owed(url, 12)
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            rows = (await session.execute(
                select(SyncState.sync_type, func.count()).group_by(SyncState.sync_type))).all()
    finally:
        await engine.dispose()
    assert {sync_type for sync_type, _ in rows} == {str(n) for n in names()}
    assert sum(count for _, count in rows) == 12


async def test_scheduler_overhead_arms_every_owed_retry() -> None:
    result = await scheduler_overhead.main(40)
    armed = (result["owed_retries"], result["retries_rearmed"], result["jobs_in_scheduler"])
    assert armed == (40, 40, 1)  # every retry covered by the one earliest-due timer


async def test_interactive_beside_the_same_keys_measures_every_change(tmp_path: Path) -> None:
    # Two changes alone and two beside the RSVP refreshes of every group, at a twentieth
    # of real time: the set-up (meetings, the refresher, the watch) runs to its JSON line.
    # A stuck change fails naming itself well inside the test's timeout (a CI worker was
    # killed at 120 s with nothing said).
    args = argparse.Namespace(database="sqlite", scale=0.05, samples=2, background_groups=3,
                              same_keys=True, sample_deadline=20.0)

    result = await interactive.run(args, tmp_path)

    assert (result["same_keys"], result["samples"]) == (True, 2)
    assert {"alone", "beside_background", "met_target", "load_average_1m"} <= set(result)
