"""Force re-sync against the sandbox through the daemon's API: the preview's counts are
the calls and the records the run then makes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db.models import CalendarEventRecord, DiscordGrant, ReminderDelivery, SyncState
from core.db.session import SessionFactory
from core.sandbox import Sandbox
from tests.admin.conftest import TOKEN, DaemonMaker, active
from tests.e2e.conftest import sandbox  # noqa: F401 (fixture)
from tests.waiting import wait_for
from tests.world import World, sandbox_settings


async def _count(sessions: SessionFactory, model: type, group_id: int, **where: object) -> int:
    conditions = [model.group_id == group_id]  # type: ignore[attr-defined]
    conditions += [getattr(model, k) == v for k, v in where.items()]
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conditions))
                   or 0)


@pytest.mark.parametrize("wiped", [True, False], ids=["overwrites-wiped", "all-in-place"])
async def test_force_resync_preview_counts_equal_the_calls_and_records_made(
    wiped: bool,
    sandbox: Sandbox,  # noqa: F811
    start_daemon: DaemonMaker, session_factory: SessionFactory, database_url: str,
    tmp_path: Path,
) -> None:
    settings = sandbox_settings(sandbox, database_url, tmp_path, admin_token=TOKEN,
                                admin_port=0, calendar_changes_seconds=1_000_000,
                                discord_gateway=False,
                                drift_sweep_tick_seconds=1_000_000)
    daemon = await active(await start_daemon(settings))
    world = World(sandbox, settings, session_factory, {})
    group = await world.add_group(meetings=2)
    for _ in range(2):
        await world.join(await world.add_user(), group)

    async def converged() -> bool:
        async with session_factory() as session:
            rows = (await session.scalars(select(SyncState).where(
                SyncState.group_id == group.id))).all()
        return len(rows) == 4 and all(
            r.status == "ok" and r.requested_generation == r.completed_generation for r in rows)

    await wait_for(converged, timeout=60, message="the group converged")
    if wiped:  # someone wiped the group's channel permissions behind our back
        for channel in (group.discord_text_channel_id, group.discord_voice_channel_id):
            assert channel is not None
            for target in list(world.member_overwrites(channel)):
                sandbox.discord.state.delete_overwrite(channel, target)
    world.clear_calls()

    async with daemon.client() as api:
        preview = (await api.post("/api/resync/preview", json={"group_id": group.id})).json()
        started = await api.post("/api/resync", json={"group_id": group.id, "confirm": True})
    await wait_for(converged, timeout=60, message="the re-sync converged")

    assert started.status_code == 202
    # 2 channel reads + 4 overwrites; 1 calendar list + 2 full updates.
    sends = preview.pop("sends")
    assert preview == {"overwrites": 4, "events": 2, "reminders": 4, "calls": 9}
    assert sum(world.calls().values()) == preview["calls"]
    # The items it sends, not only their count: one PUT per member and channel, one full
    # update per event (the 3 other calls are reads).
    members = sorted(world.member_overwrites(group.discord_text_channel_id))
    channels = (group.discord_text_channel_id, group.discord_voice_channel_id)
    assert sorted(s for s in sends if s.startswith("PUT /channels/")) == sorted(
        f"PUT /channels/{c}/permissions/{m}" for c in channels for m in members)
    updates = [s for s in sends if s.startswith(f"PUT /calendars/{group.calendar_id}/events/")]
    assert len(updates) == 2
    assert len(sends) == preview["calls"] - 3
    assert await _count(session_factory, DiscordGrant, group.id) == preview["overwrites"]
    assert await _count(session_factory, CalendarEventRecord, group.id,
                        cancelled=False) == preview["events"]
    assert await _count(session_factory, ReminderDelivery, group.id,
                        status="scheduled") == preview["reminders"]
    assert len(world.member_overwrites(group.discord_text_channel_id)) == 2
