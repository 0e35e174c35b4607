"""CPU spent while a service is down: GROUPS groups owe their Discord sync through a
two-minute (scaled) 503 storm.

Each group owes two grants (so every sync must call Discord). The outbox sweep (what the
daemon runs) works the keys while Discord answers 503. Reported over the outage:
``cpu_percent_of_one_core`` (process CPU / wall time; the in-process sandbox included),
the Discord calls that reached the fake, and ``probes_per_breaker_window``: calls after
the breaker opened (the first BREAKER_FAILURE_THRESHOLD calls open it) divided by the
number of breaker windows (BREAKER_RESET_SECONDS, 30 s nominal) in the outage; then the
seconds to converge once the storm clears.

Prints one JSON line. Usage:
    uv run --frozen python -m bench.outage_cpu [--groups 2000] [--scale 0.1]
        [--database sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import bench_database, bench_system, emit, parser, seed_groups, until
from core.db.models import SyncType
from core.engine.outbox import mark_owed
from core.engine.sweeper import OutboxSweeper

OUTAGE_SECONDS = 120.0


async def run(args: Any, tmp: Path) -> dict[str, object]:
    async with bench_database(args.database, tmp) as url, bench_system(
        url, tmp, args.scale
    ) as bench:
        settings = bench.runtime.settings
        groups = await seed_groups(bench, args.groups, 1, applied=False)
        async with bench.world.sessions() as session, session.begin():
            await mark_owed(session, [g.id for g in groups], datetime.now(UTC), [SyncType.DISCORD])
        storm = bench.sandbox.discord.inject("5xx", status=503)
        bench.world.clear_calls()
        stop = asyncio.Event()
        sweeper = asyncio.create_task(OutboxSweeper(bench.runtime).run(stop))
        outage = OUTAGE_SECONDS * args.scale
        cpu_started, started = time.process_time(), time.monotonic()
        try:
            await asyncio.sleep(outage)
            cpu = time.process_time() - cpu_started
            wall = time.monotonic() - started
            # Logins count: the adapter's first call logs in, and that is what meets the 503s.
            during = len(bench.sandbox.discord.request_log)
            storm.clear()
            recovery = await until(bench.converged, timeout=1800, interval=0.2)
        finally:
            stop.set()
            with suppress(asyncio.CancelledError):
                await sweeper
    windows = OUTAGE_SECONDS / settings.breaker_reset_seconds
    probes = max(0, during - settings.breaker_failure_threshold)
    return {
        "bench": "outage_cpu",
        "database": args.database,
        "groups_owing": args.groups,
        "scale": args.scale,
        "outage_nominal_seconds": OUTAGE_SECONDS,
        "outage_wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "cpu_percent_of_one_core": round(cpu / wall * 100, 1),
        "ratio_to_5_percent": round(cpu / wall * 100 / 5, 2),
        "discord_calls_during_outage": during,
        "breaker_windows": windows,
        "probes_per_breaker_window": round(probes / windows, 2),
        "seconds_to_converge_after_outage": round(recovery, 2),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0], scale=0.1)
    p.add_argument("--groups", type=int, default=2000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        emit(asyncio.run(run(args, Path(directory))))


if __name__ == "__main__":
    main()
