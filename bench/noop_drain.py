"""No-op drain: the engine's own cost per key, with no external call at all.

A real daemon (``main.py run``, ``ENABLED_SERVICES=`` empty: every sync succeeds as
"disabled") is started on a fresh database and left to settle; then KEYS keys (a quarter
of each sync type) are handed off at once, all due, in one commit, as an application
would. Measured from that commit until no key is owed: keys per second, and the daemon
process's CPU (user + system, all threads) per key. The clock and the CPU reading start
at the commit, so the daemon's start-up is not counted.

Targets (issue 26): ≥ 500 keys/s and ≤ 2 ms CPU per key on SQLite, ≥ 500 keys/s on
PostgreSQL. Prints one JSON line. Usage:
    uv run --frozen python -m bench.noop_drain [--keys 2000] [--database sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.pool import NullPool

from bench.daemon_process import running_daemon
from bench.harness import bench_database, emit, parser
from core.db.models import SyncState
from core.db.session import create_engine, create_session_factory
from core.engine.running.outbox import mark_owed
from core.engine.running.state import owed
from core.syncers.types import names

TARGET_KEYS_PER_SECOND = 500.0
TARGET_CPU_MS_PER_KEY = 2.0  # SQLite
SETTLE_SECONDS = 2.0


async def owed_count(sessions: Any) -> int:
    async with sessions() as session:
        return int((await session.execute(
            select(func.count()).select_from(SyncState).where(owed()))).scalar_one())


async def run(args: Any, tmp: Path) -> dict[str, object]:
    types = list(names())
    groups = range(1, args.keys // len(types) + 1)
    async with bench_database(args.database, tmp) as url, running_daemon(url, tmp) as daemon:
        engine = create_engine(url, poolclass=NullPool)
        sessions = create_session_factory(engine)
        try:
            await asyncio.sleep(SETTLE_SECONDS)  # first sweep, timers, pools
            cpu_before = daemon.cpu_seconds()
            async with sessions() as session, session.begin():
                await mark_owed(session, groups, datetime.now(UTC), types)
            started = time.monotonic()
            keys = len(groups) * len(types)
            while (left := await owed_count(sessions)) > 0:
                if time.monotonic() - started > args.timeout:
                    raise TimeoutError(f"{left} of {keys} keys still owed after {args.timeout}s")
                await asyncio.sleep(0.02)
            seconds = time.monotonic() - started
            cpu = daemon.cpu_seconds() - cpu_before
            rss = daemon.rss_bytes()
        finally:
            await engine.dispose()
    keys_per_second = keys / seconds
    cpu_ms_per_key = cpu / keys * 1000
    met = keys_per_second >= TARGET_KEYS_PER_SECOND and (
        args.database != "sqlite" or cpu_ms_per_key <= TARGET_CPU_MS_PER_KEY)
    return {
        "bench": "noop_drain",
        "database": args.database,
        "keys": keys,
        "seconds": round(seconds, 3),
        "keys_per_second": round(keys_per_second, 1),
        "cpu_ms_per_key": round(cpu_ms_per_key, 3),
        "daemon_cpu_share": round(cpu / seconds, 3),
        "rss_mb": round(rss / 2**20, 1),
        "target_keys_per_second": TARGET_KEYS_PER_SECOND,
        "target_cpu_ms_per_key": TARGET_CPU_MS_PER_KEY if args.database == "sqlite" else None,
        "met_target": met,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0], scale=1.0)
    p.add_argument("--keys", type=int, default=2000)
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        emit(asyncio.run(run(args, Path(directory))))


if __name__ == "__main__":
    main()
