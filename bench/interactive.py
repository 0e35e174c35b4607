"""Interactive latency: membership commit → change applied in the fake, alone and beside a
saturated background lane, and how long ``sync_after_group_change`` takes to return.

SAMPLES times, one user switches between two converged groups (fresh groups each time, so
no Discord route bucket or coalescing window is shared between samples): the clock starts
at the commit, "applied" is when the fake holds the user's overwrites on the new group's
channels and none on the old group's, "returned" is when ``sync_after_group_change``
returns. Then BACKGROUND_GROUPS groups of ten members, each owing twenty grants, are run in
the background lane (as the periodic refreshes and sweeps do) and the samples are repeated.

WARM_UP_CHANGES unmeasured changes go first: a running daemon is logged in to Discord
with its connection pool open, so the login and the first connections are not a sample.

``background_lane_was_busy`` says whether the background lane was saturated during every
measured change, from commit to return: it is sampled at each poll of the change, and a
change counts as saturated when, throughout, at least as many background runs were
outstanding (holding a slot, queued for one, or waiting for a rate-limit token) as the
background lane has slots. ``background_slots_full_share`` is the share of those polls at
which every background slot was taken.

Prints one JSON line. Usage:
    uv run --frozen python -m bench.interactive [--samples 30] [--background-groups 100]
        [--scale 1.0] [--database sqlite|postgresql] [--same-keys]

With ``--same-keys`` every group has an upcoming meeting, and every group's RSVP key is
re-run in the background lane too, over and over (the measured groups' first queued
behind the others; a key whose run ended is owed again and queued at the back), as RSVP
refreshes of every group that never catch up leave them: each of those runs reads its
calendar's answers in the background lane, 5 a second at Calendar's quota, so each
measured group's key is queued there (for a slot or a background token) when its change
comes. An interactive call for a key queued there must not wait for the background queue
(issue 26: it returned after p50 22.5 s, p99 43 s). ``same_keys_queued_min`` is the fewest
RSVP refresh runs outstanding at any measured commit.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
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
from core.db.models import Meeting, SyncType
from core.engine.running import runner
from core.engine.running.outbox import mark_owed
from core.engine.running.slots import RunSlots
from core.engine.running.state import SyncKey
from core.group_joining import switch_group, sync_after_group_change
from core.lanes import Lane

WARM_UP_CHANGES = 3
MEETING_IN = timedelta(days=7)  # upcoming, and far from any reminder's due time
SAMPLE_DEADLINE_SECONDS = 90.0  # real seconds; a quiet sample takes well under one


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def holds(bench: Bench, group: SeededGroup, discord_id: str) -> bool:
    return all(discord_id in bench.sandbox.discord.overwrites(c) for c in (group.text, group.voice))


@dataclass
class Refresher:
    """Every given group's RSVP key re-run in the background lane, again and again: a key
    whose run ended is owed again and queued at the back (refreshes that never catch up)."""

    bench: Bench
    group_ids: list[int]  # in queueing order
    runs: dict[int, asyncio.Task[Any]] = field(default_factory=dict)

    def outstanding(self) -> int:
        return sum(1 for run in self.runs.values() if not run.done())

    async def requeue(self) -> None:
        ended = [g for g in self.group_ids if g not in self.runs or self.runs[g].done()]
        if not ended:
            return
        rt = self.bench.runtime
        async with self.bench.world.sessions() as session, session.begin():
            await mark_owed(session, ended, rt.clock.now(), [SyncType.RSVPS])
        for group_id in ended:
            self.runs[group_id] = rt.coordinator.spawn(runner.run_key(
                rt, SyncKey(SyncType.RSVPS, group_id), lane=Lane.BACKGROUND,
                reason="rsvp_refresh"))

    async def keep_going(self, every: float) -> None:
        while True:
            await self.requeue()
            await asyncio.sleep(every)


@dataclass
class BackgroundWatch:
    """The background lane as each measured change sees it, sampled at every poll."""

    slots: RunSlots
    runs: list[asyncio.Task[Any]] = field(default_factory=list)  # background runs spawned
    refresher: Refresher | None = None  # --same-keys: the RSVP refreshes
    outstanding_min: list[int] = field(default_factory=list)  # per change
    same_keys_at_commit: list[int] = field(default_factory=list)  # per change
    polls: int = 0
    polls_full: int = 0

    def outstanding(self) -> int:
        refreshing = self.refresher.outstanding() if self.refresher is not None else 0
        return refreshing + sum(1 for run in self.runs if not run.done())

    def look(self) -> int:
        self.polls += 1
        if self.slots.busy(Lane.BACKGROUND) >= self.slots.capacity(Lane.BACKGROUND):
            self.polls_full += 1
        return self.outstanding()

    def commit_seen(self) -> None:
        if self.refresher is not None:
            self.same_keys_at_commit.append(self.refresher.outstanding())

    def summary(self) -> dict[str, object]:
        capacity = self.slots.capacity(Lane.BACKGROUND)
        saturated = sum(1 for low in self.outstanding_min if low >= capacity)
        return {
            "same_keys_queued_min": min(self.same_keys_at_commit, default=0),
            "background_slots": capacity,
            "changes_beside_saturated_background": saturated,
            "background_outstanding_min": min(self.outstanding_min, default=0),
            "background_slots_full_share": round(self.polls_full / max(self.polls, 1), 3),
        }


async def sample(
    bench: Bench, old: SeededGroup, new: SeededGroup, watch: BackgroundWatch | None,
    deadline: float = SAMPLE_DEADLINE_SECONDS,
) -> tuple[float, float]:
    user_id, discord_id = old.members[0]
    async with bench.world.sessions() as session, session.begin():
        await switch_group(session, user_id, new.id)
    started = time.monotonic()
    low = watch.look() if watch is not None else 0
    if watch is not None:
        watch.commit_seen()
    call = asyncio.create_task(sync_after_group_change(new.id, old.id))
    applied: float | None = None
    give_up = started + deadline
    while applied is None or not call.done():
        if time.monotonic() > give_up:  # a named failure, never a hang (a CI worker hung)
            raise TimeoutError(
                f"switch to group {new.id}: applied={applied is not None}, "
                f"returned={call.done()} after {deadline:.0f} s")
        if applied is None and holds(bench, new, discord_id) and not any(
            discord_id in bench.sandbox.discord.overwrites(c) for c in (old.text, old.voice)
        ):
            applied = time.monotonic() - started
        if call.done() and call.exception() is not None:
            raise call.exception()  # type: ignore[misc]
        if watch is not None:
            low = min(low, watch.look())
        await asyncio.sleep(0.002)
    returned = time.monotonic() - started
    assert applied is not None
    await call
    if watch is not None:
        watch.outstanding_min.append(low)
    return applied, returned


async def phase(
    bench: Bench, pairs: list[tuple[SeededGroup, SeededGroup]],
    watch: BackgroundWatch | None = None, deadline: float = SAMPLE_DEADLINE_SECONDS,
) -> dict[str, float]:
    applied, returned = [], []
    for old, new in pairs:
        a, r = await sample(bench, old, new, watch, deadline)
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
        groups = await seed_groups(bench, 4 * args.samples + 2 * WARM_UP_CHANGES, 2)
        pairs = [(groups[i], groups[i + 1]) for i in range(0, len(groups), 2)]
        background = await seed_groups(
            bench, args.background_groups, 10, applied=False, first=len(groups))
        if args.same_keys:
            await add_meetings(bench, [g.id for g in (*groups, *background)])
        # A daemon is logged in to Discord with its pool open when a change comes: the
        # first changes (the login, new connections, first compilations) are not measured.
        deadline = args.sample_deadline
        await phase(bench, pairs[-WARM_UP_CHANGES:], deadline=deadline)
        alone = await phase(bench, pairs[: args.samples], deadline=deadline)
        async with bench.world.sessions() as session, session.begin():
            await mark_owed(session, [g.id for g in background], bench.runtime.clock.now(),
                            [SyncType.DISCORD])
        rt = bench.runtime
        watch = BackgroundWatch(rt.limiter)
        for group in background:
            watch.runs.append(rt.coordinator.spawn(
                runner.run_key(rt, SyncKey(SyncType.DISCORD, group.id), lane=Lane.BACKGROUND)))
        measured = pairs[args.samples: 2 * args.samples]
        refreshing: asyncio.Task[None] | None = None
        if args.same_keys:
            # Every group's RSVP key re-run in the background lane, the measured groups'
            # own keys first queued behind the others: the interactive call for those keys
            # must not wait for the background queue to reach them.
            watch.refresher = Refresher(
                bench, [g.id for g in background] + [g.id for pair in measured for g in pair])
            refreshing = asyncio.create_task(watch.refresher.keep_going(0.5 * args.scale))
        await asyncio.sleep(1.0 * args.scale)  # let the background lane fill up
        started = time.monotonic()
        try:
            busy = await phase(bench, measured, watch, deadline)
        finally:
            if refreshing is not None:
                refreshing.cancel()
        seconds = time.monotonic() - started
        lane = watch.summary()
        channels = {c for g in background for c in (g.text, g.voice)}
        background_calls = sum(
            1 for r in bench.sandbox.discord.request_log
            if r.time >= started and r.path.split("/")[2:3] and r.path.split("/")[2] in channels)
    return {
        "bench": "interactive",
        "database": args.database,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "samples": args.samples,
        "background_groups": args.background_groups,
        "same_keys": args.same_keys,
        "scale": args.scale,
        "alone": alone,
        "beside_background": busy,
        "background_added_applied_p99_ms": round(
            busy["applied_p99_ms"] - alone["applied_p99_ms"], 1),
        "background_added_returned_p99_ms": round(
            busy["returned_p99_ms"] - alone["returned_p99_ms"], 1),
        "ratio_applied_p99_to_500ms": round(busy["applied_p99_ms"] / 500, 3),
        # Issue 26: quiet applied p99 < 500 ms, and beside the background lane the call
        # returns within 1 s of the quiet p99.
        "met_target": alone["applied_p99_ms"] < 500
        and busy["returned_p99_ms"] - alone["returned_p99_ms"] < 1000,
        # Saturated during every measured change, not merely busy at some point.
        "background_lane_was_busy": lane["changes_beside_saturated_background"] == args.samples,
        **lane,
        # The background lane's own Discord calls while the changes were measured.
        "background_requests_per_second": round(background_calls / seconds, 1),
    }


async def add_meetings(bench: Bench, group_ids: list[int]) -> None:
    """One upcoming meeting per group: its RSVP refresh then reads the calendar."""
    starts = bench.runtime.clock.now() + MEETING_IN
    async with bench.world.sessions() as session, session.begin():
        session.add_all([Meeting(group_id=g, starts_at=starts, duration_minutes=60, sequence=1)
                         for g in group_ids])


def main() -> None:
    p = parser(__doc__.splitlines()[0], scale=1.0)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--background-groups", type=int, default=100)
    p.add_argument("--same-keys", action="store_true",
                   help="also queue the measured groups' own RSVP keys in the background lane")
    p.add_argument("--sample-deadline", type=float, default=SAMPLE_DEADLINE_SECONDS,
                   help="real seconds after which a change that has not landed and returned "
                        "fails the run, naming it")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        emit(asyncio.run(run(args, Path(directory))))


if __name__ == "__main__":
    main()
