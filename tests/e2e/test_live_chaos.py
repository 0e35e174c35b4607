"""Chaos with the live paths on (issue 22): real daemons (``main.py run``, the Discord
gateway and the Calendar incremental job on) against the sandbox, on SQLite and
PostgreSQL. Each round people switch groups, Discord and Google answer some calls with
500 or late, a person deletes an overwrite of ours, the gateway connection is dropped,
and the daemon is killed with SIGKILL; a new one starts each round. At the end, with the
faults cleared, every overwrite and attendee list equals the database's, and people's own
overwrites and events are as they left them.

The drift sweep is off throughout: what a person changes is put right by the gateway's
live changes alone (each deletion is made while a daemon runs and waited for before the
kill; a change made while no daemon runs is the sweep's, not the gateway's, to find).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from core.db.models import Group, Meeting, Membership, SyncState, User
from core.db.session import create_engine, create_session_factory
from core.group_joining import join_group, switch_group
from core.sandbox import Sandbox, start_sandbox
from core.syncers.calendar_plan import event_id_for
from tests.e2e.daemon_world import env_for
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for
from tests.world import GUILD

pytestmark = pytest.mark.slow

SCALE = 0.05
GROUPS, USERS, ROUNDS = 3, 6, 3
EVE = "872000000000000099"  # in the guild, in no group: her overwrites are her own
EVES = {"type": 1, "allow": 1024, "deny": 0}
PERSON_EVENT = {"summary": "Someone's own meeting",
                "start": {"dateTime": "2030-01-01T10:00:00+00:00"},
                "end": {"dateTime": "2030-01-01T11:00:00+00:00"}}


def channel(n: int) -> str:
    return f"8720000000000001{n:02d}"


def calendar(n: int) -> str:
    return f"chaos-{n}@group.calendar.google.com"


def discord_id(n: int) -> str:
    return f"8720000000000002{n:02d}"


@dataclass
class World:
    url: str
    sandbox: Sandbox
    groups: list[int]
    users: list[int]
    theirs: dict[str, dict[str, object]]  # calendar -> a person's own event, as inserted


async def seed(url: str, sandbox: Sandbox) -> World:
    d = sandbox.discord
    d.add_guild(GUILD, bot_role_position=50)
    d.add_user(EVE, "eve")
    d.add_member(GUILD, EVE)
    for n in range(USERS):
        d.add_user(discord_id(n), f"user{n}")
        d.add_member(GUILD, discord_id(n))
    theirs = {}
    for n in range(GROUPS):
        d.add_channel(channel(n), GUILD, f"chaos-{n}", type=0)
        d.set_foreign_overwrite(channel(n), EVE, 1, allow=1024, deny=0)
        sandbox.calendar.add_calendar(calendar(n))
        theirs[calendar(n)] = sandbox.calendar.store.insert(
            calendar(n), dict(PERSON_EVENT), "someone@example.org")
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            groups = [Group(name=f"Chaos {n}", discord_guild_id=GUILD,
                            discord_text_channel_id=channel(n), calendar_id=calendar(n))
                      for n in range(GROUPS)]
            users = [User(email=f"user{n}@example.org", discord_user_id=discord_id(n),
                          display_name=f"User {n}") for n in range(USERS)]
            session.add_all([*groups, *users])
            await session.flush()
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
            for group in groups:
                session.add(Meeting(group_id=group.id, sequence=1, duration_minutes=60,
                                    starts_at=start))
            for n, user in enumerate(users):
                await join_group(session, user.id, groups[n % GROUPS].id)
            return World(url, sandbox, [g.id for g in groups], [u.id for u in users], theirs)
    finally:
        await engine.dispose()


def environment(world: World, tmp: Path) -> dict[str, str]:
    sandbox = world.sandbox
    key = sandbox.write_service_account_file(tmp / "sa.json")
    return env_for(
        world.url, scale=SCALE, ENABLED_SERVICES="discord,calendar",
        DISCORD_BOT_TOKEN=sandbox.discord_bot_token,
        DISCORD_API_BASE_URL=sandbox.discord_base_url,
        GOOGLE_CREDENTIALS_FILE=str(key),
        GOOGLE_IMPERSONATE_SUBJECT=sandbox.impersonate_subject,
        GOOGLE_CALENDAR_ENDPOINT=sandbox.calendar_endpoint,
        CALENDAR_CHANGES_SECONDS="20",  # one second of real time
        DRIFT_SWEEP_PERIOD_SECONDS="1000000000", DRIFT_SWEEP_TICK_SECONDS="1000000000",
        LEASE_SECONDS="4",  # a killed daemon's leases free soon after
        # Moves of one of two members are the point here, not the deletion guard's.
        GUARD_MAX_REMOVAL_SHARE="1.0",
    )


async def desired(world: World) -> dict[int, set[int]]:
    """Each group's members' user indexes, from the database."""
    engine = create_engine(world.url)
    try:
        async with create_session_factory(engine)() as session:
            rows = (await session.execute(
                select(Membership.group_id, Membership.user_id)
                .where(Membership.left_at.is_(None)))).all()
    finally:
        await engine.dispose()
    members: dict[int, set[int]] = {g: set() for g in world.groups}
    for group_id, user_id in rows:
        members[group_id].add(world.users.index(user_id))
    return members


async def switch(world: World, user: int, group: int) -> None:
    engine = create_engine(world.url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await switch_group(session, world.users[user], world.groups[group])
    finally:
        await engine.dispose()


async def all_converged(world: World) -> bool:
    engine = create_engine(world.url)
    try:
        async with create_session_factory(engine)() as session:
            rows = (await session.scalars(select(SyncState))).all()
    finally:
        await engine.dispose()
    return bool(rows) and all(
        r.requested_generation == r.completed_generation and r.status == "ok" for r in rows)


def ours_on(world: World, n: int) -> set[str]:
    return {t for t in world.sandbox.discord.overwrites(channel(n)) if t != EVE}


def attendees(world: World, n: int, meeting_event: str) -> set[str]:
    event = world.sandbox.calendar.get_event(calendar(n), meeting_event)
    return {a["email"] for a in event.get("attendees", [])}


async def delete_as_a_person(sandbox: Sandbox, channel_id: str, user: str) -> None:
    """Through the fake's REST API, until it is done (the chaos answers some with 500)."""
    url = f"{sandbox.discord_base_url}/channels/{channel_id}/permissions/{user}"
    headers = {"Authorization": f"Bot {sandbox.discord_bot_token}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.delete(url, headers=headers) as r:
                if r.status == 204:
                    return
                assert r.status == 500, await r.text()
    raise AssertionError("the person's deletion was refused twenty times")


def gateway_ready(log: Path) -> bool:
    return '"discord_gateway_ready"' in log.read_text()


async def test_kill_9_gateway_drops_5xx_and_latency_end_converged_with_peoples_things_kept(
    database_url: str, tmp_path: Path
) -> None:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        world = await seed(database_url, sandbox)
        env = environment(world, tmp_path)
        daemons: list[subprocess.Popen[bytes]] = []
        try:
            for round_ in range(ROUNDS):
                log = tmp_path / f"daemon-{round_}.log"
                daemons.append(spawn_run(env, log))
                await wait_for(lambda log=log: gateway_ready(log), timeout=60,
                               message=f"round {round_}: the gateway's cache current")
                faults = [
                    sandbox.discord.inject("5xx", fraction=0.3),
                    sandbox.discord.inject("latency", fraction=0.2, latency=2.0),
                    sandbox.calendar.inject("5xx", fraction=0.3),
                    sandbox.calendar.inject("latency", fraction=0.2, latency=2.0),
                ]
                # People switch groups (the database is the truth), synced through the
                # faults; then a person deletes an overwrite of ours and the link drops:
                # the gateway's news alone puts it back (the key was not owed).
                for user in range(round_ % 2, USERS, 2):
                    await switch(world, user, (user + round_ + 1) % GROUPS)
                await wait_for(lambda: all_converged(world), timeout=90,
                               message=f"round {round_}: the moves synced")
                members = await desired(world)
                n = next(i for i in range(GROUPS) if members[world.groups[i]])
                victim = discord_id(min(members[world.groups[n]]))
                await delete_as_a_person(sandbox, channel(n), victim)
                sandbox.discord.drop_gateway_connections()
                await wait_for(lambda n=n, victim=victim: victim in ours_on(world, n),
                               timeout=60, message=f"round {round_}: restored live")
                # More moves, and the daemon is killed while it syncs them.
                for user in range(1 - round_ % 2, USERS, 2):
                    await switch(world, user, (user + round_) % GROUPS)
                await asyncio.sleep(0.3)
                daemons[-1].send_signal(signal.SIGKILL)
                await asyncio.to_thread(daemons[-1].wait, 15)
                for fault in faults:
                    fault.clear()

            # The last daemon, with the faults over: everything ends as the database says.
            log = tmp_path / "daemon-last.log"
            daemons.append(spawn_run(env, log))
            await wait_for(lambda: gateway_ready(log), timeout=60,
                           message="the last daemon's gateway cache current")
            await wait_for(lambda: all_converged(world), timeout=120,
                           message="every key converged after the chaos")
            members = await desired(world)
            for n, group_id in enumerate(world.groups):
                want = members[group_id]
                assert ours_on(world, n) == {discord_id(u) for u in want}, n
                assert sandbox.discord.overwrites(channel(n))[EVE] == EVES
                event_id = event_id_for(await meeting_of(world, group_id))
                assert attendees(world, n, event_id) == {f"user{u}@example.org"
                                                         for u in want}, n
                theirs = world.theirs[calendar(n)]
                now = sandbox.calendar.get_event(calendar(n), str(theirs["id"]))
                assert now == theirs, "a person's own event was written"
            # The chaos happened: refused and late calls on both services, resumed links.
            for service in (sandbox.discord, sandbox.calendar):
                fired = {f for r in service.request_log for f in r.faults}
                assert {"5xx", "latency"} <= fired, service
            assert sandbox.discord.gateway_stats()["resumes"] >= 1
            logs = [tmp_path / f"daemon-{r}.log" for r in range(ROUNDS)]
            repaired = sum(p.read_text().count('"discord_live_change"') for p in logs)
            assert repaired >= ROUNDS  # each deletion was put right by the gateway's news
            daemons[-1].send_signal(signal.SIGTERM)
            await asyncio.to_thread(daemons[-1].wait, 15)
            assert daemons[-1].returncode == 0, log.read_text()[-3000:]
        finally:
            for daemon in daemons:
                if daemon.poll() is None:
                    daemon.kill()


async def meeting_of(world: World, group_id: int) -> int:
    engine = create_engine(world.url)
    try:
        async with create_session_factory(engine)() as session:
            return int(await session.scalar(
                select(Meeting.id).where(Meeting.group_id == group_id)) or 0)
    finally:
        await engine.dispose()
