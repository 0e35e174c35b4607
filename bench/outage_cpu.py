"""CPU spent while a service is down: GROUPS groups owe their Discord sync through a
two-minute (scaled) 503 storm.

Each group owes two grants (so every sync must call Discord). The outbox sweep (what the
daemon runs) works the keys while Discord answers 503. Reported over the outage:
``cpu_percent_of_one_core`` (process CPU / wall time; the in-process sandbox included),
the Discord requests that reached the fake, split into bursts: the opening one (the calls
in flight until the breaker opened) and one per half-open probe. ``probe_windows_used`` is
at most the number of breaker windows (BREAKER_RESET_SECONDS, 30 s nominal) and
``requests_per_probe_max`` at most 1 + the in-call retries when every window has at most
one probe call. Then the seconds to converge once the storm clears.

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

from bench.harness import (
    Bench,
    bench_database,
    bench_system,
    emit,
    parser,
    seed_groups,
    until,
)
from core.clients.limits import ClientLimits
from core.db.models import SyncType
from core.engine.loops.sweeper import OutboxSweeper
from core.engine.running.outbox import mark_owed
from core.engine.running.state import SyncKey
from core.lifecycle import mark_and_run

OUTAGE_SECONDS = 120.0


def split_bursts(times: list[float], gap: float) -> list[list[float]]:
    bursts: list[list[float]] = []
    for t in times:
        if bursts and t - bursts[-1][-1] < gap:
            bursts[-1].append(t)
        else:
            bursts.append([t])
    return bursts


async def warm_up(bench: Bench, first: int) -> None:
    """A daemon meets an outage warm: its connection pool open, its Discord client logged
    in, its statements compiled. Sync a slot's worth of other groups first (Discord
    healthy), so that the window measures the outage, not the process's first runs."""
    rt = bench.runtime
    warm = await seed_groups(bench, 2 * rt.settings.sync_concurrency, 1, applied=False,
                             first=first)
    keys = [SyncKey(SyncType.DISCORD, g.id) for g in warm]
    await mark_and_run(rt, keys)
    await until(bench.converged, timeout=120)


async def run(args: Any, tmp: Path) -> dict[str, object]:
    # The production poll interval (the test settings poll ten times as often).
    async with bench_database(args.database, tmp) as url, bench_system(
        url, tmp, args.scale, outbox_poll_seconds=1.0
    ) as bench:
        settings = bench.runtime.settings
        groups = await seed_groups(bench, args.groups, 1, applied=False)
        await warm_up(bench, first=args.groups)
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
            times = sorted(r.time for r in bench.sandbox.discord.request_log)
            during = len(times)
            storm.clear()
            recovery = await until(bench.converged, timeout=1800, interval=0.2)
        finally:
            stop.set()
            with suppress(asyncio.CancelledError):
                await sweeper
    windows = OUTAGE_SECONDS / settings.breaker_reset_seconds
    # Requests come in bursts: the one that opens the breaker, then one per half-open probe
    # (a call and its in-call retries). A gap of half a breaker window separates bursts.
    bursts = split_bursts(times, gap=settings.breaker_reset_seconds * args.scale / 2)
    probe_bursts = bursts[1:]
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
        "opening_burst_requests": len(bursts[0]) if bursts else 0,
        "probe_windows_used": len(probe_bursts),
        "requests_per_probe_max": max((len(b) for b in probe_bursts), default=0),
        # One probe is one call: at most 1 + in_call_retries requests (Cloudflare 503 retries).
        "in_call_retries": ClientLimits.from_settings(settings).discord_in_call_retries,
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
