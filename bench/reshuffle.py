"""Bulk reshuffle: every user moves to another group at once; how close to the rate-limit
floor does groupsync converge?

USERS Discord users in GROUPS groups start converged (seeded straight into the fake and the
delivery records, spending no rate limit). One transaction then moves every member of group
g to group g+1, and the outbox sweep (what the daemon runs) converges everything; the time
counts from the start of that commit. Reported:

- ``calls`` vs ``minimal_calls``: the minimal diff is one DELETE per overwrite that must go,
  one PUT per overwrite that must appear and one read per channel of every synced group (a
  sync reconciles against the live overwrites: what is missing or altered is restored, and
  people's overwrites are left alone);
- ``floor_seconds`` = minimal_calls / Discord's global limit (50 per second, scaled), and
  ``ratio`` = seconds to converge / floor, of which ``commit_seconds`` were the moves' own
  transaction (1,000 ``switch_group`` calls);
- ``self_inflicted_429`` = 429 answers from the fake (no 429 is injected);
- ``held_keys``: keys the deletion guard held (GUARD_MAX_REMOVALS_PER_10_MIN is 500 per
  sync type by default: a reshuffle of more movers is held for an operator, and the run
  ends once only held keys are left).

With ``--gateway on`` the runtime follows the sandbox's Discord gateway (as the daemon
does) and syncs read channels from its cache: ``channel_reads`` counts the REST reads that
remain and ``writes_ratio`` compares the time with the writes-only floor. ``--gateway drop``
loses the connection as the sweep starts (the session invalidated, so the new one comes
seconds later; a sweep starts every group's read at once, so a drop after the reads cost
nothing): the syncs read over REST until the new session's cache is current, and must
still converge (``divergence`` counts overwrites that differ from the desired ones).

Prints one JSON line. Usage:
    uv run --frozen python -m bench.reshuffle [--users 1000] [--groups 200] [--scale 1.0]
        [--database sqlite|postgresql] [--gateway off|on|drop] [--guard-limit N]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any

from bench.harness import (
    SeededGroup,
    bench_database,
    bench_system,
    discord_calls,
    emit,
    parser,
    seed_groups,
    until,
)
from core.clients.discord_gateway import GatewayLink
from core.engine.loops.discord_changes import follow_gateway
from core.engine.loops.sweeper import OutboxSweeper
from core.group_joining import switch_group
from core.sandbox import Sandbox

DISCORD_GLOBAL_PER_SECOND = 50.0
READ = "GET /channels/{channel_id}"


def member_overwrites(sandbox: Sandbox, groups: list[SeededGroup]) -> set[tuple[str, str]]:
    held = set()
    for group in groups:
        for channel in (group.text, group.voice):
            for target, overwrite in sandbox.discord.overwrites(channel).items():
                if overwrite["type"] == 1:
                    held.add((channel, target))
    return held


def desired_after(groups: list[SeededGroup]) -> set[tuple[str, str]]:
    """Members of group g sit in group g+1 after the reshuffle."""
    wanted = set()
    for index, group in enumerate(groups):
        target = groups[(index + 1) % len(groups)]
        for _, discord_id in group.members:
            wanted |= {(target.text, discord_id), (target.voice, discord_id)}
    return wanted


async def run(args: Any, tmp: Path) -> dict[str, object]:
    async with bench_database(args.database, tmp) as url, bench_system(
        url, tmp, args.scale,
        **({"guard_max_removals_per_10_min": args.guard_limit} if args.guard_limit else {}),
    ) as bench, AsyncExitStack() as stack:
        groups = await seed_groups(bench, args.groups, args.users // args.groups)
        link = None
        if args.gateway != "off":
            link = await follow_gateway(bench.runtime, stack)
            assert link is not None, "the runtime has no gateway link (DISCORD_GATEWAY=0?)"
            await until(lambda: _up(link), timeout=120, interval=0.05)
        before = member_overwrites(bench.sandbox, groups)
        after = desired_after(groups)
        changed = {c for c, _ in before ^ after}
        synced = [g for g in groups if {g.text, g.voice} & changed]
        minimal = len(before - after) + len(after - before) + 2 * len(synced)
        # Counted from the start of the commit (issue 26): the moves' own transaction is
        # part of the time an operator waits for.
        cpu_started, started = time.process_time(), time.monotonic()
        async with bench.world.sessions() as session, session.begin():
            for index, group in enumerate(groups):
                target = groups[(index + 1) % len(groups)]
                for user_id, _ in group.members:
                    await switch_group(session, user_id, target.id)
        committed = time.monotonic()
        bench.world.clear_calls()
        stop = asyncio.Event()
        if args.gateway == "drop":
            _lose_gateway(bench.sandbox)
        sweeper = asyncio.create_task(OutboxSweeper(bench.runtime).run(stop))
        try:
            await until(bench.settled, timeout=3600, interval=0.1)
        finally:
            stop.set()
            with suppress(asyncio.CancelledError):
                await sweeper
        seconds = time.monotonic() - started
        cpu = time.process_time() - cpu_started
        held_keys = await bench.held()
        held = member_overwrites(bench.sandbox, groups)
        records = discord_calls(bench.sandbox)
        calendar = len(bench.sandbox.calendar.request_log)
        gateway = link.status().to_json() if link is not None else None
    floor = minimal / (DISCORD_GLOBAL_PER_SECOND / args.scale)
    # The writes actually sent (a held key's are not): the floor no read can lower
    sent = sum(1 for r in records if r.method in ("PUT", "DELETE") and r.status != 429)
    writes_floor = sent / (DISCORD_GLOBAL_PER_SECOND / args.scale)
    return {
        "bench": "reshuffle",
        "database": args.database,
        "users": args.users,
        "groups": args.groups,
        "scale": args.scale,
        "seconds": round(seconds, 2),
        "commit_seconds": round(committed - started, 2),
        "floor_seconds": round(floor, 2),
        "ratio": round(seconds / floor, 3),
        "calls": sum(1 for r in records if r.status != 429),
        "minimal_calls": minimal,
        "calls_ratio": round(sum(1 for r in records if r.status != 429) / minimal, 3),
        "self_inflicted_429": sum(1 for r in records if r.status == 429),
        "calendar_calls": calendar,
        "achieved_calls_per_second": round(len(records) / seconds * args.scale, 1),
        "cpu_seconds": round(cpu, 1),
        "converged_correctly": held == after,
        "divergence": len(held ^ after),
        "held_keys": held_keys,
        "gateway": args.gateway,
        "channel_reads": sum(1 for r in records if r.route == READ),
        "writes": sent,
        "writes_floor_seconds": round(writes_floor, 2),
        "writes_ratio": round(seconds / writes_floor, 3),
        "gateway_state": gateway,
    }


async def _up(link: GatewayLink) -> bool:
    return link.cache.up


def _lose_gateway(sandbox: Sandbox) -> None:
    """The committed reshuffle meets a lost gateway: every connection dropped and the
    session invalidated, so the RESUME is refused and the new IDENTIFY waits Discord's 5 s
    identify gap: the new session's cache is current only seconds into the run."""
    sandbox.discord.invalidate_gateway_sessions(notify=False)
    sandbox.discord.drop_gateway_connections()


def main() -> None:
    p = parser(__doc__.splitlines()[0], scale=1.0)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--groups", type=int, default=200)
    p.add_argument("--gateway", choices=["off", "on", "drop"], default="off",
                   help="follow the sandbox's Discord gateway (drop: lost as the sweep starts)")
    p.add_argument("--guard-limit", type=int, default=None,
                   help="GUARD_MAX_REMOVALS_PER_10_MIN (default 500 holds part of the run)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        emit(asyncio.run(run(args, Path(directory))))


if __name__ == "__main__":
    main()
