"""Interactive latency: membership commit → change applied in the fake, alone and beside a
saturated background lane, and how long ``sync_after_group_change`` takes to return.

SAMPLES times, one user switches between two converged groups (fresh groups each time, so
no Discord route bucket or coalescing window is shared between samples): the clock starts
at the commit, "applied" is when the fake holds the user's overwrites on the new group's
channels and none on the old group's, "returned" is when ``sync_after_group_change``
returns. Then BACKGROUND_GROUPS groups of ten members, each owing twenty grants, are run in
the background lane (as the periodic refreshes and sweeps do) and the samples are repeated.

Prints one JSON line. Usage:
    uv run --frozen python -m bench.interactive [--samples 30] [--background-groups 100]
        [--scale 1.0] [--database sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    Bench,
    SeededGroup,
    bench_database,
    bench_system,
    emit,
    parser,
    seed_groups,
)
from core.db.models import SyncType
from core.engine import runner
from core.engine.outbox import mark_owed
from core.engine.state import SyncKey
from core.group_joining import switch_group, sync_after_group_change
from core.lanes import Lane


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def holds(bench: Bench, group: SeededGroup, discord_id: str) -> bool:
    return all(discord_id in bench.sandbox.discord.overwrites(c) for c in (group.text, group.voice))


async def sample(bench: Bench, old: SeededGroup, new: SeededGroup) -> tuple[float, float]:
    user_id, discord_id = old.members[0]
    async with bench.world.sessions() as session, session.begin():
        await switch_group(session, user_id, new.id)
    started = time.monotonic()
    call = asyncio.create_task(sync_after_group_change(new.id, old.id))
    while not (holds(bench, new, discord_id) and not any(
        discord_id in bench.sandbox.discord.overwrites(c) for c in (old.text, old.voice)
    )):
        if call.done() and call.exception() is not None:
            raise call.exception()  # type: ignore[misc]
        await asyncio.sleep(0.002)
    applied = time.monotonic() - started
    await call
    return applied, time.monotonic() - started


async def phase(bench: Bench, pairs: list[tuple[SeededGroup, SeededGroup]]) -> dict[str, float]:
    applied, returned = [], []
    for old, new in pairs:
        a, r = await sample(bench, old, new)
        applied.append(a * 1000)
        returned.append(r * 1000)
        await asyncio.sleep(0.05)
    return {
        "applied_p50_ms": round(statistics.median(applied), 1),
        "applied_p99_ms": round(percentile(applied, 0.99), 1),
        "returned_p50_ms": round(statistics.median(returned), 1),
        "returned_p99_ms": round(percentile(returned, 0.99), 1),
    }


async def run(args: Any, tmp: Path) -> dict[str, object]:
    async with bench_database(args.database, tmp) as url, bench_system(
        url, tmp, args.scale
    ) as bench:
        groups = await seed_groups(bench, 4 * args.samples, 2)
        pairs = [(groups[i], groups[i + 1]) for i in range(0, len(groups), 2)]
        background = await seed_groups(
            bench, args.background_groups, 10, applied=False, first=len(groups))
        alone = await phase(bench, pairs[: args.samples])
        async with bench.world.sessions() as session, session.begin():
            await mark_owed(session, [g.id for g in background], bench.runtime.clock.now(),
                            [SyncType.DISCORD])
        rt = bench.runtime
        for group in background:
            rt.coordinator.spawn(
                runner.run_key(rt, SyncKey(SyncType.DISCORD, group.id), lane=Lane.BACKGROUND))
        await asyncio.sleep(1.0 * args.scale)  # let the background lane fill up
        busy = await phase(bench, pairs[args.samples:])
        background_calls = sum(
            1 for r in bench.sandbox.discord.request_log
            if r.route.startswith("PUT") and any(r.path.startswith(f"/channels/{g.text}")
                                                 for g in background[:5]))
    return {
        "bench": "interactive",
        "database": args.database,
        "samples": args.samples,
        "background_groups": args.background_groups,
        "scale": args.scale,
        "alone": alone,
        "beside_background": busy,
        "background_added_applied_p99_ms": round(
            busy["applied_p99_ms"] - alone["applied_p99_ms"], 1),
        "background_added_returned_p99_ms": round(
            busy["returned_p99_ms"] - alone["returned_p99_ms"], 1),
        "ratio_applied_p99_to_500ms": round(busy["applied_p99_ms"] / 500, 3),
        "background_lane_was_busy": background_calls > 0,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0], scale=1.0)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--background-groups", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        emit(asyncio.run(run(args, Path(directory))))


if __name__ == "__main__":
    main()
