"""Idle cost of a daemon: CPU share and memory of ``main.py run`` doing nothing, empty and
with 100,000 owed retries waiting on their timers.

Two phases on fresh SQLite files (or PostgreSQL databases), no service enabled:
- empty: the daemon starts, settles, and its CPU (user + system, all threads) is read over
  WINDOW seconds;
- owed: OWED owed retries (attempts spread over the backoff range, due an hour or more
  from now, so none fires during the window) are written before the daemon starts; it
  re-arms them at start-up (``retries_rearmed``: re-arm time is from its leadership to that
  line, by the log's own timestamps), settles, and is read over the same window, with its
  resident memory at the end.

Targets (issue 26): empty < 0.5 % of a core; owed < 2 %, RSS < 300 MB, re-arm < 5 s.
Prints one JSON line. Usage:
    uv run --frozen python -m bench.idle_cpu [--window 60] [--owed 100000]
        [--database sqlite|postgresql] [--phase both|empty|owed]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.pool import NullPool

from bench.daemon_process import Daemon, running_daemon
from bench.harness import bench_database, emit, parser
from core.db.models import SyncState
from core.db.session import create_engine, create_session_factory
from core.syncers.types import names

TARGET_EMPTY_CPU_PERCENT = 0.5
TARGET_OWED_CPU_PERCENT = 2.0
TARGET_RSS_MB = 300.0
TARGET_REARM_SECONDS = 5.0
SETTLE_SECONDS = 5.0


async def write_owed(url: str, n: int) -> None:
    engine = create_engine(url, poolclass=NullPool)
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
            "next_attempt_at": now + timedelta(seconds=3600 + i % 3600),
            "sentry_reported_level": 1,
            "updated_at": now,
        }
        for i in range(n)
    ]
    try:
        async with create_session_factory(engine)() as session, session.begin():
            for start in range(0, n, 5000):
                await session.execute(insert(SyncState), rows[start : start + 5000])
    finally:
        await engine.dispose()


async def window(daemon: Daemon, seconds: float) -> dict[str, float]:
    await asyncio.sleep(SETTLE_SECONDS)
    cpu, started = daemon.cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    return {
        "cpu_percent": round((daemon.cpu_seconds() - cpu) / elapsed * 100, 3),
        "rss_mb": round(daemon.rss_bytes() / 2**20, 1),
        "window_seconds": round(elapsed, 1),
    }


def _stamp(daemon: Daemon, event: str) -> datetime | None:
    for line in daemon.events():
        if line.get("event") == event and isinstance(line.get("timestamp"), str):
            return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00"))
    return None


async def empty(args: Any, tmp: Path) -> dict[str, object]:
    async with bench_database(args.database, tmp) as url, running_daemon(url, tmp) as daemon:
        measured = await window(daemon, args.window)
    return {**measured, "met_target": measured["cpu_percent"] < TARGET_EMPTY_CPU_PERCENT}


async def owed(args: Any, tmp: Path) -> dict[str, object]:
    async with bench_database(args.database, tmp) as url:
        await write_owed(url, args.owed)
        async with running_daemon(url, tmp) as daemon:
            deadline = time.monotonic() + 120
            while not daemon.saw("retries_rearmed"):
                if time.monotonic() > deadline:
                    raise TimeoutError("retries not re-armed within 120 s")
                await asyncio.sleep(0.1)
            led, armed = _stamp(daemon, "leadership_acquired"), _stamp(daemon, "retries_rearmed")
            measured = await window(daemon, args.window)
    rearm = (armed - led).total_seconds() if led and armed else None
    met = (measured["cpu_percent"] < TARGET_OWED_CPU_PERCENT
           and measured["rss_mb"] < TARGET_RSS_MB
           and rearm is not None and rearm < TARGET_REARM_SECONDS)
    return {"owed_retries": args.owed, "rearm_seconds": rearm and round(rearm, 3), **measured,
            "met_target": met}


async def run(args: Any) -> dict[str, object]:
    result: dict[str, object] = {
        "bench": "idle_cpu", "database": args.database,
        "targets": {"empty_cpu_percent": TARGET_EMPTY_CPU_PERCENT,
                    "owed_cpu_percent": TARGET_OWED_CPU_PERCENT, "owed_rss_mb": TARGET_RSS_MB,
                    "rearm_seconds": TARGET_REARM_SECONDS},
    }
    for name, phase in (("empty", empty), ("owed", owed)):
        if args.phase in ("both", name):
            with tempfile.TemporaryDirectory() as directory:
                result[name] = await phase(args, Path(directory))
    return result


def main() -> None:
    p = parser(__doc__.splitlines()[0], scale=1.0)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--owed", type=int, default=100_000)
    p.add_argument("--phase", choices=["both", "empty", "owed"], default="both")
    emit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
