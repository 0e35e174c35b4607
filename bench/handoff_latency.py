"""Hand-off pickup: how soon a running daemon starts a sync that a process with no
runtime handed off (``sync_after_group_change`` → outbox row, NOTIFY / SQLite commit).

For SQLite (a temporary file) and PostgreSQL (a fresh database on the server named by
BENCH_POSTGRES_URL or GROUPSYNC_TEST_POSTGRES_URL, skipped without one) it starts the
daemon (``run_daemon``, default poll interval, a syncer that only records when it
starts), then hands off N keys one by one, each through its own connection as an
application process would, and measures from its commit (the call's return) to the start
of the daemon's run. Target: pickup p99 under 250 ms on both. Prints one JSON line.
Usage: uv run python -m bench.handoff_latency [N]
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from core.config import Settings, load_settings
from core.daemon import run_daemon
from core.db.migrate import upgrade
from core.db.models import SyncType
from core.notifications import scheduler as scheduler_module
from core.observability import configure_logging
from core.process.handoff import hand_off
from core.syncers.base import SyncContext, Syncer, SyncResult
from core.syncers.deps import SyncerDeps
from core.syncers.types import names

TARGET_P99_MS = 250.0
STARTS: dict[int, float] = {}  # group id → perf_counter() when the daemon's run started


class RecordingSyncer:
    def __init__(self, sync_type: SyncType) -> None:
        self.sync_type = sync_type

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        STARTS.setdefault(group_id, time.perf_counter())
        return {"failed": 0}


async def build_recording_syncers(deps: SyncerDeps) -> Mapping[SyncType, Syncer]:
    return {t: RecordingSyncer(t) for t in names()}


async def measure(database_url: str, n: int) -> dict[str, Any]:
    importlib.import_module("bench.handoff_latency").STARTS.clear()
    await asyncio.to_thread(upgrade, database_url)
    settings = load_settings(database_url=database_url, enabled_services="",
                             syncer_factory="bench.handoff_latency:build_recording_syncers")
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(settings, stop))
    try:
        while scheduler_module.current_runtime() is None:
            if daemon.done():
                await daemon
            await asyncio.sleep(0.05)
        samples = [await _one(settings, 1_000_000 + i) for i in range(n)]
    finally:
        stop.set()
        await daemon
    pickups = sorted(pickup for pickup, _call in samples)
    p99 = pickups[min(len(pickups) - 1, int(len(pickups) * 0.99))]
    return {
        "pickup_p50_ms": round(statistics.median(pickups), 1),
        "pickup_p99_ms": round(p99, 1),
        "pickup_max_ms": round(pickups[-1], 1),
        "handoff_call_p50_ms": round(statistics.median(call for _p, call in samples), 1),
        "met_target": p99 < TARGET_P99_MS,
    }


async def _one(settings: Settings, group_id: int) -> tuple[float, float]:
    """(pickup, call) in ms: from the hand-off's commit (its return) to the daemon's run,
    and the hand-off call itself (its own connection: the application's side)."""
    # The factory is loaded by name, so under `python -m` its STARTS is the imported
    # module's, not __main__'s.
    starts = importlib.import_module("bench.handoff_latency").STARTS
    await asyncio.sleep(random.uniform(0.02, 0.1))  # changes arrive at random moments
    started = time.perf_counter()
    assert await hand_off([group_id], [SyncType.DISCORD], settings=settings)
    committed = time.perf_counter()
    while group_id not in starts:
        if time.perf_counter() > committed + 10:
            raise TimeoutError(f"group {group_id} was not picked up within 10 s")
        await asyncio.sleep(0.002)
    pickup = max(0.0, starts[group_id] - committed)  # may start before the call returns
    return pickup * 1000, (committed - started) * 1000


async def postgres_database() -> tuple[str, str] | None:
    admin = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("GROUPSYNC_TEST_POSTGRES_URL")
    if not admin:
        return None
    name = f"gs_bench_{uuid.uuid4().hex[:8]}"
    plain = make_url(admin).set(drivername="postgresql")
    connection = await asyncpg.connect(plain.render_as_string(hide_password=False))
    try:
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return plain.set(database=name).render_as_string(hide_password=False), name


async def drop_postgres(admin: str, name: str) -> None:
    plain = make_url(admin).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(plain.render_as_string(hide_password=False))
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await connection.close()


async def main(n: int) -> dict[str, Any]:
    configure_logging("json", "ERROR")  # the measurement, not the daemon's log lines
    result: dict[str, Any] = {"bench": "handoff_latency", "samples": n,
                              "target_p99_ms": TARGET_P99_MS}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = await measure(f"sqlite:///{Path(tmp) / 'bench.db'}", n)
    created = await postgres_database()
    if created is None:
        result["postgresql"] = "skipped: set BENCH_POSTGRES_URL or GROUPSYNC_TEST_POSTGRES_URL"
    else:
        url, name = created
        try:
            result["postgresql"] = await measure(url, n)
        finally:
            await drop_postgres(url, name)
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))))
