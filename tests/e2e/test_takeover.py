"""The takeover overlap, end to end: two real daemons with the real Discord syncer against
the sandbox, on PostgreSQL. The leader's overwrite PUT is slow (a sandbox latency
fault); while it is in flight the leader's lock connection is terminated and the member
leaves. The new leader must not take the key from the old one's live lease; the old
leader finishes its run under that lease (recording the grant it made), and the new one
then revokes it. Before the fix, the new leader freed every lease at takeover, found
nothing to revoke, and the ex-member kept access for good."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from core.db.models import SyncState
from core.db.session import SessionFactory
from core.engine.health.leadership import ADVISORY_LOCK_KEY, asyncpg_dsn
from core.sandbox import Sandbox, start_sandbox
from tests.engine.daemon_process import Daemon
from tests.engine.db_proxy import DatabaseProxy
from tests.waiting import wait_for
from tests.world import GUILD, SCALE, World, sandbox_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

PUT_OVERWRITE = "PUT /channels/{channel_id}/permissions/{target}"
SLOW_PUT = 300.0  # nominal seconds: 3 s at the sandbox's time scale


@pytest.fixture
async def sandbox(database_url: str) -> AsyncIterator[Sandbox]:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: leadership moves between daemons on one database")
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        yield sandbox


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for process in started:
        process.close()


async def _converged(sessions: SessionFactory, group_id: int) -> bool:
    async with sessions() as session:
        rows = (await session.execute(
            select(SyncState).where(SyncState.group_id == group_id))).scalars().all()
    return len(rows) == 4 and all(
        r.status == "ok" and r.completed_generation == r.requested_generation for r in rows
    )


async def _terminate_lock_connection(database_url: str) -> int:
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return int(await admin.fetchval(
            # This test's database only: other tests' leaders hold the same key in theirs.
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = "
            "'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            ADVISORY_LOCK_KEY,
        ))
    finally:
        await admin.close()


def _env(sandbox: Sandbox) -> dict[str, str]:
    return {
        "SYNCER_FACTORY": "core.syncers.registry:build_syncers",
        "ENABLED_SERVICES": "discord",
        "DISCORD_BOT_TOKEN": sandbox.discord_bot_token,
        "DISCORD_API_BASE_URL": sandbox.discord_base_url,
        "SHUTDOWN_TIMEOUT_SECONDS": "15",  # the old leader may finish what is in flight
        "CLIENT_CALL_TIMEOUT_SECONDS": "2000",  # 20 s scaled: the slow PUT is answered
    }


def _member_has_access(world: World, group: Any, discord_user_id: str) -> bool:
    return any(
        discord_user_id in world.member_overwrites(channel)
        for channel in (group.discord_text_channel_id, group.discord_voice_channel_id)
    )


async def test_a_live_leaders_slow_grant_is_not_left_behind_at_takeover(
    sandbox: Sandbox, daemons: list[Daemon], session_factory: SessionFactory,
    database_url: str, tmp_path: Path,
) -> None:
    world = World(sandbox, sandbox_settings(sandbox, database_url, tmp_path),
                  session_factory, {})
    group, member = await world.add_group(meetings=1), await world.add_user()
    env = _env(sandbox)
    old = Daemon(database_url, tmp_path, tmp_path / "old.log", **env)
    daemons.append(old)
    await wait_for(lambda: bool(old.events("daemon_started")), timeout=120, message="a leader")
    new = Daemon(database_url, tmp_path, tmp_path / "new.log", **env)
    daemons.append(new)
    await wait_for(lambda: bool(new.events("standing_by")), timeout=120, message="a standby")

    # Given the leader granting a new member access, its overwrite PUTs slow
    slow = sandbox.discord.inject("latency", latency=SLOW_PUT, route=PUT_OVERWRITE, count=2)
    await world.join(member, group)
    await wait_for(lambda: (slow.fault.count or 0) < 2, timeout=60,
                   message="the first PUT to be in flight")

    # When its lock connection drops and the member leaves while the PUT is in flight
    assert await _terminate_lock_connection(database_url) == 1
    await world.leave(member)

    # Then the standby takes over, the old leader lives on as a standby, and the key
    # converges with the member holding nothing and no grant left recorded
    await wait_for(lambda: bool(new.events("daemon_started")), timeout=60,
                   message="the standby to take over")
    await wait_for(lambda: _converged(session_factory, group.id), timeout=90,
                   message="the group to converge")
    def old_run_ended() -> bool:  # its membership-driven discord run, not a drift sweep
        ended = [e for name in ("sync_succeeded", "sync_failed", "sync_interrupted",
                                "sync_lease_lost") for e in old.events(name)]
        return old.process.poll() is not None or any(
            e.get("sync_type") == "discord" and e.get("reason") == "outbox" for e in ended)

    await wait_for(old_run_ended, timeout=60, message="the old leader's in-flight run to end")
    await wait_for(lambda: _converged(session_factory, group.id), timeout=90,
                   message="the group to converge after it")
    assert member.discord_user_id is not None
    assert not _member_has_access(world, group, member.discord_user_id)
    assert await world.grants(group.id) == set()
    assert await _converged(session_factory, group.id)
    await wait_for(lambda: bool(old.events("standing_by")), timeout=60,
                   message="the old leader to stand by")
    assert old.process.poll() is None, old.output()[-3000:]
    assert old.events("leadership_lost")
    # the new leader revoked the old one's grants, after they had landed
    assert [r.route for r in sandbox.discord.request_log].count(
        "DELETE /channels/{channel_id}/permissions/{target}") >= 2


async def test_a_leader_cut_off_mid_grant_records_nothing_and_the_new_leader_revokes(
    sandbox: Sandbox, daemons: list[Daemon], session_factory: SessionFactory,
    database_url: str, tmp_path: Path,
) -> None:
    """The old leader reaches the database through a proxy that goes down while its slow
    PUT is in flight: its lock connection drops with everything else, it cannot renew,
    so it stops and records nothing; the new leader waits out its lease, finds the grant
    recorded pending (intent before effect) and revokes it."""
    world = World(sandbox, sandbox_settings(sandbox, database_url, tmp_path),
                  session_factory, {})
    group, member = await world.add_group(meetings=1), await world.add_user()
    assert member.discord_user_id is not None
    proxy = DatabaseProxy(database_url).start()
    try:
        old = Daemon(proxy.database_url, tmp_path, tmp_path / "old.log", **_env(sandbox))
        daemons.append(old)
        await wait_for(lambda: bool(old.events("daemon_started")), timeout=120,
                       message="a leader")
        new = Daemon(database_url, tmp_path, tmp_path / "new.log", **_env(sandbox))
        daemons.append(new)
        await wait_for(lambda: bool(new.events("standing_by")), timeout=120,
                       message="a standby")

        # Given the leader granting a new member access, its overwrite PUTs slow
        slow = sandbox.discord.inject("latency", latency=SLOW_PUT, route=PUT_OVERWRITE,
                                      count=2)
        await world.join(member, group)
        await wait_for(lambda: (slow.fault.count or 0) < 2, timeout=60,
                       message="the first PUT to be in flight")

        # When the leader loses the database while it is in flight, and the member leaves
        proxy.down()
        await world.leave(member)

        # Then the new leader takes over and the key converges: no access, no grant
        await wait_for(lambda: bool(new.events("daemon_started")), timeout=60,
                       message="the standby to take over")
        await wait_for(lambda: _converged(session_factory, group.id), timeout=90,
                       message="the group to converge")
        await wait_for(lambda: bool(old.events("sync_lease_lost")), timeout=60,
                       message="the old leader to give up its run")
        assert await world.grants(group.id) == set()
        assert not _member_has_access(world, group, member.discord_user_id)
        assert not [e for e in old.events("sync_succeeded")  # it recorded no grant
                    if e["sync_type"] == "discord" and e["result"].get("granted")]

        # And once the database is back the old leader stands by, alive
        proxy.up()
        await wait_for(lambda: bool(old.events("standing_by")), timeout=60,
                       message="the old leader to stand by",
                       evidence=lambda: "\n" + old.output()[-6000:])
        assert old.process.poll() is None, old.output()[-3000:]
        assert len(old.events("database_unavailable")) == 1
        assert not _member_has_access(world, group, member.discord_user_id)
    finally:
        proxy.close()
