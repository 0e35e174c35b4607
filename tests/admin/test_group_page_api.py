"""The group page's API (issue 23) against a real daemon and the sandbox over loopback:
the stored parts (members, keys with their waiting reason, the attempt timeline), the
live state read on demand through the syncers' own read (background lane, nothing
written), Sync now's dry run and its run with a step trace; an unknown group is 404 and
no answer carries a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.db.models import Group, SyncState
from core.db.session import SessionFactory
from core.sandbox import Sandbox
from tests.admin.conftest import TOKEN, AdminDaemon, DaemonMaker, active
from tests.e2e.conftest import sandbox  # noqa: F401 (fixture)
from tests.waiting import wait_for
from tests.world import World, sandbox_settings


async def converged(sessions: SessionFactory, group_id: int) -> bool:
    async with sessions() as session:
        rows = (await session.scalars(select(SyncState).where(
            SyncState.group_id == group_id))).all()
    return len(rows) == 4 and all(
        r.status == "ok" and r.requested_generation == r.completed_generation for r in rows)


async def group_with_a_deleted_overwrite(
    sandbox: Sandbox, start_daemon: DaemonMaker, sessions: SessionFactory,  # noqa: F811
    database_url: str, tmp_path: Path,
) -> tuple[AdminDaemon, World, Group, str]:
    settings = sandbox_settings(sandbox, database_url, tmp_path, admin_token=TOKEN,
                                admin_port=0, calendar_changes_seconds=1_000_000,
                                discord_gateway=False)
    daemon = await active(await start_daemon(settings))
    world = World(sandbox, settings, sessions, {})
    group, user = await world.group_with_member(meetings=1)
    await wait_for(lambda: converged(sessions, group.id), timeout=60, message="converged")
    assert group.discord_text_channel_id is not None
    assert user.discord_user_id is not None
    sandbox.discord.state.delete_overwrite(group.discord_text_channel_id, user.discord_user_id)
    world.clear_calls()
    return daemon, world, group, user.discord_user_id


def item(view: dict[str, Any], sync_type: str, subject: str) -> dict[str, Any]:
    entry = next(t for t in view["sync_types"] if t["sync_type"] == sync_type)
    return next(i for i in entry["items"] if i["subject"] == subject)


async def test_live_state_shows_the_deleted_overwrite_and_sync_now_restores_it_with_a_trace(
    sandbox: Sandbox,  # noqa: F811
    start_daemon: DaemonMaker, session_factory: SessionFactory, database_url: str,
    tmp_path: Path,
) -> None:
    daemon, world, group, user = await group_with_a_deleted_overwrite(
        sandbox, start_daemon, session_factory, database_url, tmp_path)
    channel = group.discord_text_channel_id
    subject = f"overwrite on channel {channel} for user {user}"
    async with daemon.client() as api:
        stored = (await api.get(f"/api/groups/{group.id}")).json()
        live = (await api.get(f"/api/groups/{group.id}/live")).json()
        reads = dict(world.calls())
        preview = (await api.post(f"/api/groups/{group.id}/sync/preview")).json()
        world.clear_calls()
        ran = await api.post(f"/api/groups/{group.id}/sync", json={"confirm": True})
        after = (await api.get(f"/api/groups/{group.id}/live")).json()
        found = (await api.get("/api/groups", params={"q": group.name.upper()})).json()
        audit = (await api.get("/api/audit")).json()["items"]

    # Stored parts: the member, every key (ok, nothing waiting), the attempt timeline.
    assert [m["discord_user_id"] for m in stored["members"]] == [user]
    assert {t["sync_type"]: t["key"]["status"] for t in stored["sync_types"]} == {
        "discord": "ok", "calendar": "ok", "reminders": "ok", "rsvps": "ok"}
    assert {a["sync_type"] for a in stored["attempts"]} == {
        "discord", "calendar", "reminders", "rsvps"}
    assert all(a["outcome"] == "ok" and a["duration_ms"] is not None
               for a in stored["attempts"])

    # Live: read as the sync reads it (one GET per channel, one calendar list), nothing sent
    # (the changes listing is off: its background reads would be counted here too).
    missing = item(live, "discord", subject)
    assert (missing["desired"], missing["live"]) == ("view, send, read history", "missing")
    assert missing["difference"].startswith("will be restored")
    assert missing["sends"] == f"PUT /channels/{channel}/permissions/{user}"
    voice = item(live, "discord",
                 f"overwrite on channel {group.discord_voice_channel_id} for user {user}")
    assert voice["in_step"] is True
    discord = next(t for t in live["sync_types"] if t["sync_type"] == "discord")
    assert (discord["lane"], discord["differences"], discord["read_at"] is not None) == (
        "background", 1, True)
    assert all(c.startswith("GET ") and c.endswith("→ 200") for c in discord["calls"])
    assert set(reads) <= {"GET /channels/{channel_id}", "GET /calendars/{calendar_id}/events"}

    # The dry run lists the one item it would send; the run's trace shows read, plan, PUT.
    assert preview["calls"] == 1
    assert [i["sends"] for t in preview["sync_types"] for i in t["items"]] == [
        f"PUT /channels/{channel}/permissions/{user}"]
    assert ran.status_code == 200, ran.text
    steps = next(t for t in ran.json()["sync_types"] if t["sync_type"] == "discord")["steps"]
    kinds = [s["kind"] for s in steps]
    assert kinds.index("membership") < kinds.index("read") < kinds.index("plan") < len(kinds) - 1
    texts = [s["text"] for s in steps]
    assert f"PUT /channels/{channel}/permissions/{user} → 204" in texts
    assert texts[-1].startswith("ok")
    assert world.member_overwrites(channel) == {user}
    assert item(after, "discord", subject)["in_step"] is True
    assert found["items"] == [{"id": group.id, "name": group.name, "archived": False}]
    assert (audit[0]["action"], audit[0]["outcome"]) == ("sync_now", "accepted")

    # No secret in any answer.
    for body in (stored, live, preview, ran.json(), after):
        text = str(body)
        assert sandbox.discord_bot_token not in text
        assert TOKEN not in text


async def test_an_unknown_group_is_404_and_the_search_needs_text(daemon: AdminDaemon) -> None:
    async with daemon.client() as api:
        answers = [await api.get("/api/groups/999999"),
                   await api.get("/api/groups/999999/live"),
                   await api.post("/api/groups/999999/sync/preview"),
                   await api.post("/api/groups/999999/sync", json={"confirm": True})]
        empty = await api.get("/api/groups", params={"q": "  "})
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert "unknown group 999999" in answers[0].json()["detail"]
    assert empty.status_code == 422
