"""External calls per membership change, and calls wasted during an outage.

Against the sandbox (time scale 0.01) with the real syncers, clients and scheduler:
- a switch between two converged groups: calls made vs the minimal diff;
- N groups (default 200) owing their Discord sync through a scaled two-minute 503 storm:
  calls that reached Discord during it, and seconds to converge once it clears.
Prints one JSON line.  Usage: uv run python -m bench.outage_calls [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from core.db.migrate import upgrade
from core.db.models import SyncState, SyncType
from core.db.session import create_engine, create_session_factory
from core.engine.loops.sweeper import OutboxSweeper
from core.engine.running.outbox import mark_owed
from core.group_joining import switch_group, sync_after_group_change
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SyncScheduler
from core.runtime import open_runtime
from core.sandbox import start_sandbox
from tests.world import GUILD, SCALE, World, sandbox_settings

# 2 revokes, 2 grants, one read per channel of both groups (4), and per group one list of
# its calendar and one event update (4).
MINIMAL_SWITCH_CALLS = 12


async def converged(world: World) -> bool:
    async with world.sessions() as session:
        rows = (await session.execute(select(SyncState))).scalars().all()
    return all(r.status == "ok" and r.requested_generation == r.completed_generation for r in rows)


async def until(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while not await condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise TimeoutError("did not converge")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def main(n: int, tmp: Path) -> dict[str, object]:
    url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    async with start_sandbox(time_scale=SCALE) as sandbox, AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        settings = sandbox_settings(sandbox, url, tmp)
        scheduler = SyncScheduler()
        rt = await open_runtime(settings, stack, scheduler=scheduler, engine=engine)
        scheduler.start()
        stack.callback(scheduler.shutdown, wait=False)
        stack.enter_context(scheduler_module.installed(rt, scheduler))
        world = World(sandbox, settings, create_session_factory(engine), rt.syncers)

        a, b = await world.add_group(meetings=1), await world.add_group(meetings=1)
        mover = await world.add_user()
        await world.join(mover, a)
        await world.join(await world.add_user(), b)
        await sync_after_group_change(a.id)
        await sync_after_group_change(b.id)
        world.clear_calls()
        async with world.sessions() as session, session.begin():
            previous = await switch_group(session, mover.id, b.id)
        await sync_after_group_change(b.id, previous)
        switch_calls = sum(world.calls().values())

        groups = [await world.add_group(meetings=0) for _ in range(n)]
        for group in groups:
            await world.join(await world.add_user(), group)
        async with world.sessions() as session, session.begin():
            await session.execute(
                update(SyncState).values(
                    completed_generation=SyncState.requested_generation, status="ok"
                )
            )
            await mark_owed(session, [g.id for g in groups], datetime.now(UTC), [SyncType.DISCORD])
        storm = sandbox.discord.inject("5xx", status=503)
        world.clear_calls()
        stop = asyncio.Event()
        sweeper = asyncio.create_task(OutboxSweeper(rt).run(stop))
        await asyncio.sleep(120 * SCALE)
        during = sum(1 for r in sandbox.discord.request_log if r.status == 503)
        storm.clear()
        seconds = await until(lambda: converged(world), timeout=300)
        stop.set()
        await sweeper
    return {
        "bench": "outage_calls",
        "switch_calls": switch_calls,
        "switch_minimal_calls": MINIMAL_SWITCH_CALLS,
        "groups_owing": n,
        "outage_nominal_seconds": 120,
        "discord_calls_during_outage": during,
        "seconds_to_converge_after_outage": round(seconds, 2),
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as directory:
        print(json.dumps(asyncio.run(main(count, Path(directory)))))
