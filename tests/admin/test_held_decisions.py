"""Held syncs decided by an operator: a real daemon against the sandbox, its admin API,
and the `groupsync` CLI as a subprocess (straight on the database, and with --api)."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete

from core.config import Settings
from core.db.models import Group, Membership, SyncState
from core.db.session import SessionFactory
from core.engine.running.outbox import mark_owed
from core.sandbox import Sandbox
from tests.admin.conftest import TOKEN, AdminDaemon, DaemonMaker, active
from tests.e2e.conftest import sandbox  # noqa: F401 (fixture)
from tests.waiting import wait_for
from tests.world import World, sandbox_settings

ROOT = Path(__file__).resolve().parents[2]
# Five `groupsync` subprocesses and two syncs of a real daemon: generous on a loaded CI box.
pytestmark = pytest.mark.timeout(300)
GUARDED = ("discord", "calendar")


async def groupsync(settings: Settings, *argv: str) -> tuple[int, str, str]:
    """`python main.py VERB …` on the daemon's database, as an operator types it."""
    env = {**os.environ, "DATABASE_URL": settings.database_url, "ENABLED_SERVICES": "",
           "ADMIN_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    env.pop("SENTRY_DSN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "main.py", *argv, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def statuses(sessions: SessionFactory, group_id: int) -> dict[str, str]:
    async with sessions() as session:
        rows = [await session.get(SyncState, (t, group_id)) for t in GUARDED]
    return {t: r.status if r else "-" for t, r in zip(GUARDED, rows, strict=True)}


@pytest.fixture
async def held_group(
    sandbox: Sandbox, start_daemon: DaemonMaker, session_factory: SessionFactory,  # noqa: F811
    database_url: str, tmp_path: Path,
) -> tuple[AdminDaemon, World, Group]:
    """An active daemon whose 12-member group was emptied upstream: both keys held."""
    settings = sandbox_settings(sandbox, database_url, tmp_path, admin_token=TOKEN,
                                admin_port=0, calendar_changes_seconds=1_000_000,
                                discord_gateway=False)
    daemon = await active(await start_daemon(settings))
    world = World(sandbox, settings, session_factory, {})
    group = await world.add_group(meetings=1)
    for _ in range(12):
        await world.join(await world.add_user(), group)
    await wait_for(lambda: len(world.member_overwrites(group.discord_text_channel_id)) == 12,
                   timeout=30, message="the group synced")
    await wait_for(lambda: [len(a) for a in world.attendees(group).values()] == [12],
                   timeout=30, message="the group's meeting invited")
    world.clear_calls()
    async with session_factory() as session, session.begin():
        await session.execute(delete(Membership).where(Membership.group_id == group.id))
        await mark_owed(session, [group.id], datetime.now(UTC))
    await reach(session_factory, group.id, {"discord": "held", "calendar": "held"})
    return daemon, world, group


async def reach(sessions: SessionFactory, group_id: int, wanted: dict[str, str]) -> None:
    async def there() -> bool:
        return await statuses(sessions, group_id) == wanted

    await wait_for(there, timeout=30, message=f"keys {wanted}")


async def test_the_cli_and_the_api_list_and_decide_held_syncs(
    held_group: tuple[AdminDaemon, World, Group], session_factory: SessionFactory,
) -> None:
    daemon, world, group = held_group
    settings = daemon.settings
    code, out, _ = await groupsync(settings, "held")
    assert code == 0
    assert f"held discord:{group.id} since" in out
    assert "would remove 12 of 12 members" in out
    assert out.count("(U") >= 24  # each removed user named, in both keys
    async with daemon.client() as api:
        listed = (await api.get("/api/held")).json()["items"]
        key = (await api.get(f"/api/keys/discord/{group.id}")).json()
    assert {(i["sync_type"], i["group_id"], i["removals"]) for i in listed} == {
        ("discord", group.id, 12), ("calendar", group.id, 12)}
    assert key["status"] == "held"
    assert key["waiting"]["code"] == "held"

    # Reject Discord from the CLI: one line, still held, nothing removed.
    code, out, _ = await groupsync(settings, "reject", "discord", str(group.id))
    assert (code, out.count("\n")) == (0, 1)
    assert out.startswith(f"rejected discord:{group.id}")
    async with daemon.client() as api:
        (rejected,) = [i for i in (await api.get("/api/held")).json()["items"]
                       if i["sync_type"] == "discord"]
    assert rejected["decision"] == "rejected"
    assert rejected["decided_by"].startswith("cli:")

    # An unknown key: exit 1, one line (beside the refusal's audit log line).
    code, out, err = await groupsync(settings, "approve", "discord", "999999")
    assert (code, out) == (1, "")
    assert [line for line in err.splitlines() if line.startswith("groupsync:")] == [
        "groupsync: discord:999999 is not held"]
    async with daemon.client() as api:
        unknown = await api.post("/api/held/calendar/999999/approve")
        approved = await api.post(f"/api/held/calendar/{group.id}/approve")
    assert unknown.status_code == 404
    assert approved.status_code == 200
    assert approved.json()["decision"] == "approved"

    # The calendar applies its plan; Discord stays rejected, with no call to Discord.
    await wait_for(lambda: [len(a) for a in world.attendees(group).values()] == [0],
                   timeout=30, message="the approved calendar plan applied")
    await reach(session_factory, group.id, {"discord": "held", "calendar": "ok"})
    assert len(world.member_overwrites(group.discord_text_channel_id)) == 12
    assert world.calls()["DELETE /channels/{channel_id}/permissions/{target}"] == 0

    # Approve Discord through the daemon's API from the CLI (--api): it converges.
    code, out, _ = await groupsync(settings, "approve", "discord", str(group.id),
                                   "--api", daemon.url)
    assert (code, out.count("\n")) == (0, 1)
    assert out.startswith(f"approved discord:{group.id}: its 12 removal(s)")
    await wait_for(lambda: not world.member_overwrites(group.discord_text_channel_id),
                   timeout=30, message="the approved discord plan applied")
    await reach(session_factory, group.id, {"discord": "ok", "calendar": "ok"})
    code, out, _ = await groupsync(settings, "held")
    assert (code, out) == (0, "no held syncs\n")
