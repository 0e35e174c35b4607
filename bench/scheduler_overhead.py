"""Scheduler overhead for many owed retries: re-arming them at start-up, and memory held.

Writes N owed rows (attempts spread over the backoff range, due within the next hour) to
a fresh SQLite file, then times ``recover`` (read the rows, arm the one APScheduler date
job that stands for them all) on a started SyncScheduler, counts the jobs it armed and
measures the memory they hold per owed retry.
Prints one JSON line.  Usage: uv run python -m bench.scheduler_overhead [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import tracemalloc
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from core.config import load_settings
from core.db.migrate import upgrade
from core.db.models import SyncState
from core.engine.loops.recovery import recover
from core.notifications.scheduler import SyncScheduler
from core.runtime import open_runtime
from core.syncers.types import names


async def main(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        settings = load_settings(database_url=url, enabled_services="")
        async with AsyncExitStack() as stack:
            scheduler = SyncScheduler()
            rt = await open_runtime(settings, stack, scheduler=scheduler)
            now = datetime.now(UTC)
            types = list(names())
            rows = [
                {
                    "sync_type": str(types[i % len(types)]),
                    "group_id": i // 4 + 1,
                    "status": "retrying",
                    "requested_generation": 1,
                    "completed_generation": 0,
                    "attempt": i % 12 + 1,
                    "next_attempt_at": now + timedelta(seconds=60 + i % 3600),
                    "sentry_reported_level": 1,
                    "updated_at": now,
                }
                for i in range(n)
            ]
            async with rt.session_factory() as session, session.begin():
                for start in range(0, n, 5000):
                    await session.execute(insert(SyncState), rows[start : start + 5000])
            scheduler.start(paused=True)  # nothing fires while we measure
            stack.callback(scheduler.shutdown, wait=False)
            started = time.perf_counter()
            armed = await recover(rt, scheduler)
            elapsed = time.perf_counter() - started
            jobs = len(scheduler.get_jobs())
            # Memory on a second, empty scheduler, so tracemalloc does not skew the timing.
            fresh = SyncScheduler()
            fresh.start(paused=True)
            stack.callback(fresh.shutdown, wait=False)
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            await recover(rt, fresh)
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return {
        "bench": "scheduler_overhead",
        "owed_retries": n,
        "retries_rearmed": armed,
        "jobs_in_scheduler": jobs,
        "rearm_seconds": round(elapsed, 3),
        "rearm_per_key_ms": round(elapsed / n * 1000, 4),
        "memory_bytes_per_retry": round(held / max(n, 1), 1),
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(asyncio.run(main(count))))
