"""What the throughput benchmarks share: the database (SQLite or PostgreSQL), the sandbox
with groupsync's real runtime and scheduler, bulk seeding of converged groups, and the
one JSON line each prints.

PostgreSQL comes from GROUPSYNC_BENCH_POSTGRES_URL or GROUPSYNC_TEST_POSTGRES_URL (an admin
URL, as ``scripts/start-postgres.sh`` prints); each run creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, insert, or_, select
from sqlalchemy.engine import make_url

from core.db.migrate import upgrade
from core.db.models import DiscordGrant, Group, Membership, SyncState, User
from core.db.session import create_engine, create_session_factory
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SyncScheduler
from core.observability import configure_logging
from core.runtime import Runtime, open_runtime
from core.sandbox import Sandbox, start_sandbox
from core.sandbox.reqlog import RequestRecord
from core.syncers.discord_plan import CHANNEL_OVERWRITE, TEXT_ALLOW, VOICE_ALLOW
from tests.world import GUILD, World, sandbox_settings

POSTGRES_ENVS = ("GROUPSYNC_BENCH_POSTGRES_URL", "GROUPSYNC_TEST_POSTGRES_URL")


def parser(description: str, *, scale: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--database", choices=["sqlite", "postgresql"],
                   default=os.environ.get("GROUPSYNC_BENCH_DATABASE", "sqlite"))
    p.add_argument("--scale", type=float, default=scale,
                   help="time scale of the sandbox and the engine (1.0 = real Discord limits)")
    return p


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


@asynccontextmanager
async def bench_database(kind: str, tmp: Path) -> AsyncIterator[str]:
    """A fresh database at the head revision, dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    admin = next((os.environ[e] for e in POSTGRES_ENVS if os.environ.get(e)), None)
    if admin is None:
        raise SystemExit(
            "--database postgresql needs GROUPSYNC_BENCH_POSTGRES_URL (or "
            "GROUPSYNC_TEST_POSTGRES_URL): an admin URL such as scripts/start-postgres.sh prints"
        )
    name = f"gs_bench_{uuid.uuid4().hex[:10]}"
    plain = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(plain)
    try:
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    url = make_url(admin).set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False)
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        connection = await asyncpg.connect(plain)
        try:
            await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await connection.close()


@dataclass
class Bench:
    sandbox: Sandbox
    world: World
    runtime: Runtime
    scheduler: SyncScheduler

    async def converged(self) -> bool:
        # Counted in SQL: this poll shares the event loop with the engine it measures, and
        # loading every sync-state row as an object cost a third of the run's CPU.
        owed = (
            select(func.count())
            .select_from(SyncState)
            .where(or_(SyncState.status != "ok",
                       SyncState.requested_generation != SyncState.completed_generation))
        )
        async with self.world.sessions() as session:
            return (await session.execute(owed)).scalar_one() == 0

    async def held(self) -> int:
        """Keys the deletion guard holds for an operator (they will not converge alone)."""
        held = select(func.count()).select_from(SyncState).where(SyncState.status == "held")
        async with self.world.sessions() as session:
            return int((await session.execute(held)).scalar_one())

    async def settled(self) -> bool:
        """Converged, or nothing left to run but what the deletion guard holds."""
        if await self.converged():
            return True
        stuck = (
            select(func.count()).select_from(SyncState)
            .where(SyncState.status != "held",
                   or_(SyncState.status != "ok",
                       SyncState.requested_generation != SyncState.completed_generation))
        )
        async with self.world.sessions() as session:
            return (await session.execute(stuck)).scalar_one() == 0


@asynccontextmanager
async def bench_system(url: str, tmp: Path, scale: float, **settings: Any) -> AsyncIterator[Bench]:
    """The sandbox at ``scale`` and groupsync's real runtime on it, installed in the process
    slot, its scheduler the process's ``_scheduler`` (as the daemon or an embedding
    application does)."""
    configure_logging(level="WARNING")  # a benchmark measures; per-call lines cost CPU
    engine = create_engine(url)
    async with start_sandbox(time_scale=scale) as sandbox, AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        values = {"time_scale": scale, "log_level": "WARNING", **settings}
        config = sandbox_settings(sandbox, url, tmp, **values)
        scheduler = SyncScheduler()
        rt = await open_runtime(config, stack, scheduler=scheduler, engine=engine)
        scheduler.start()
        stack.callback(scheduler.shutdown, wait=False)
        world = World(sandbox, config, create_session_factory(engine), rt.syncers)
        gc.freeze()  # as the daemon does once started (core/daemon.py)
        try:
            with scheduler_module.installed(rt, scheduler):
                yield Bench(sandbox, world, rt, scheduler)
        finally:
            await rt.coordinator.drain(1.0)


@dataclass(frozen=True)
class SeededGroup:
    id: int
    text: str
    voice: str
    members: list[tuple[int, str]]  # (user id, discord id)


async def seed_groups(
    bench: Bench, groups: int, members: int, *, applied: bool = True, first: int = 0
) -> list[SeededGroup]:
    """Groups of ``members`` Discord users each, written in bulk. With ``applied`` the fake
    already holds every grant and the delivery records say so (a converged start, made
    without spending rate limit); without, every grant is still owed to the fake."""
    discord = bench.sandbox.discord
    now = datetime.now(UTC)
    seeded: list[SeededGroup] = []
    async with bench.world.sessions() as session, session.begin():
        for g in range(first, first + groups):
            text, voice = f"81{g:016d}", f"82{g:016d}"
            discord.add_channel(text, GUILD, f"bench-{g}-text", type=0)
            discord.add_channel(voice, GUILD, f"bench-{g}-voice", type=2)
            calendar_id = f"bench-{g}@group.calendar.google.com"
            bench.sandbox.calendar.add_calendar(calendar_id)
            group = Group(name=f"Bench {g}", discord_guild_id=GUILD, discord_text_channel_id=text,
                          discord_voice_channel_id=voice, calendar_id=calendar_id)
            session.add(group)
            users = []
            for m in range(members):
                discord_id = f"84{g:08d}{m:08d}"
                discord.add_user(discord_id, f"u{g}-{m}")
                discord.add_member(GUILD, discord_id)
                users.append((User(email=f"u{g}-{m}@example.org", discord_user_id=discord_id,
                                   display_name=f"U{g}-{m}"), discord_id))
            session.add_all([u for u, _ in users])
            await session.flush()
            for user, _ in users:
                session.add(Membership(user_id=user.id, group_id=group.id, role="participant",
                                       joined_at=now))
            seeded.append(SeededGroup(group.id, text, voice, [(u.id, d) for u, d in users]))
        if applied:
            rows = []
            for group_ in seeded:
                for _, discord_id in group_.members:
                    for channel, allow in ((group_.text, TEXT_ALLOW), (group_.voice, VOICE_ALLOW)):
                        discord.state.put_overwrite(
                            channel, discord_id, {"type": 1, "allow": str(allow), "deny": "0"})
                        rows.append({"group_id": group_.id, "guild_id": GUILD,
                                     "kind": CHANNEL_OVERWRITE, "target_id": channel,
                                     "discord_user_id": discord_id, "granted_at": now})
            for start in range(0, len(rows), 2000):
                await session.execute(insert(DiscordGrant), rows[start:start + 2000])
    return seeded


def discord_calls(sandbox: Sandbox) -> list[RequestRecord]:
    """Requests Discord's fake answered, logins left out (``time`` is time.monotonic())."""
    skip = {"GET /users/@me", "GET /oauth2/applications/@me"}
    return [r for r in sandbox.discord.request_log if r.route not in skip]


async def until(condition: Callable[[], Awaitable[bool]], timeout: float,
                interval: float = 0.05) -> float:
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not reached within {timeout:g}s")
        await asyncio.sleep(interval)
    return time.monotonic() - started
