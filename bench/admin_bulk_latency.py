"""Interactive sync latency while a bulk retry runs in the background lane.

A real daemon (admin face included) on a fresh SQLite file, with syncers that spend
``CALL_MS`` per sync as if calling a service. First the latency of interactive syncs
alone, then the same while a confirmed bulk retry of N failing keys runs. Prints one JSON
line; the target is that interactive p95 stays within twice its idle value plus one call.
Usage: uv run python -m bench.admin_bulk_latency [N]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert

from core.admin.bulk import BulkScope
from core.admin.face import AdminFace
from core.config import load_settings
from core.daemon import run_daemon
from core.db.migrate import upgrade
from core.db.models import Group, SyncState, SyncType
from core.lifecycle import sync_group
from core.syncers.base import SyncContext, Syncer, SyncResult
from core.syncers.types import names

if TYPE_CHECKING:
    from core.runtime import SyncerDeps

CALL_MS = 20
SAMPLES = 40


class SlowSyncer:
    def __init__(self, sync_type: SyncType) -> None:
        self.sync_type = sync_type

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        await asyncio.sleep(CALL_MS / 1000)
        return {"granted": 0, "revoked": 0, "unchanged": 1, "failed": 0}


async def build_slow_syncers(deps: SyncerDeps) -> Mapping[SyncType, Syncer]:
    return {t: SlowSyncer(t) for t in names()}


async def _latencies(groups: list[int]) -> list[float]:
    found = []
    for group in groups:
        started = time.perf_counter()
        await sync_group("calendar", group)
        found.append(time.perf_counter() - started)
    return found


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0.05)


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(len(values) * 0.95) - 1)]


async def main(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        settings = load_settings(
            database_url=url, enabled_services="", admin_port=0, coalesce_window_seconds=0,
            syncer_factory="bench.admin_bulk_latency:build_slow_syncers", sentry_dsn=None)
        face = AdminFace(settings)
        stop = asyncio.Event()
        daemon = asyncio.create_task(run_daemon(settings, stop, face=face))
        await _until(lambda: face.presence is not None and face.presence.role == "active")
        service = face.service
        assert service is not None
        now = datetime.now(UTC)
        async with service.session_factory() as session, session.begin():
            await session.execute(insert(Group), [{"id": i, "name": f"g{i}"}
                                                  for i in range(1, n + 2 * SAMPLES + 1)])
            await session.execute(insert(SyncState), [{
                "sync_type": "discord", "group_id": i, "status": "needs_attention",
                "requested_generation": 1, "completed_generation": 0, "attempt": 4,
                "next_attempt_at": now + timedelta(hours=1), "error_kind": "needs_attention",
                "sentry_reported_level": 1, "updated_at": now} for i in range(1, n + 1)])
        idle = await _latencies(list(range(n + 1, n + SAMPLES + 1)))
        started = time.perf_counter()
        job = await service.bulk_start(BulkScope(service="discord"), via="bench")
        during = await _latencies(list(range(n + SAMPLES + 1, n + 2 * SAMPLES + 1)))
        for _ in range(100_000):
            if (await service.bulk_job(job["id"]))["state"] == "done":
                break
            await asyncio.sleep(0.05)
        bulk_seconds = time.perf_counter() - started
        stop.set()
        await daemon
    target = 2 * _p95(idle) + CALL_MS / 1000
    return {
        "bench": "admin_bulk_latency", "bulk_keys": n, "call_ms": CALL_MS,
        "idle_p50_ms": round(statistics.median(idle) * 1000, 1),
        "idle_p95_ms": round(_p95(idle) * 1000, 1),
        "during_bulk_p50_ms": round(statistics.median(during) * 1000, 1),
        "during_bulk_p95_ms": round(_p95(during) * 1000, 1),
        "target_p95_ms": round(target * 1000, 1),
        "meets_target": _p95(during) <= target,
        "bulk_seconds": round(bulk_seconds, 2),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))))
