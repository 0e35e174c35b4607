"""Every operator verb, straight on the database and through a daemon's API (--api)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from core.admin.client import ApiError
from core.admin.errors import Conflict
from core.cli import build_parser
from core.config import Settings, load_settings
from core.db.models import BulkJob, DaemonHeartbeat, DiscordGrant, ServiceState
from core.db.session import SessionFactory
from tests.admin.conftest import AdminDaemon
from tests.admin.helpers import failing_keys, key_row
from tests.engine.conftest import Fakes
from tests.factories import make_group, make_meeting, make_user
from tests.waiting import wait_for

Capture = pytest.CaptureFixture[str]


async def cli(settings: Settings, capsys: Capture, *argv: str) -> tuple[int, str]:
    """Run one verb's handler as `groupsync` would, in a thread (it runs its own loop)."""
    args = build_parser().parse_args(list(argv))
    code = await asyncio.to_thread(args.handler, args, settings)
    return code, capsys.readouterr().out


def payload(out: str) -> dict[str, Any]:
    """The verb's JSON, among any log lines (unconfigured logging prints to stdout here, and
    the in-process daemon's runs may log before or after the verb prints)."""
    start = out.index("{\n") if not out.startswith("{") else 0
    value: dict[str, Any] = json.JSONDecoder().raw_decode(out[start:])[0]
    return value


@pytest.fixture
def local(database_url: str) -> Settings:
    return load_settings(database_url=database_url, enabled_services="")


async def test_status_shows_pauses_failing_keys_and_daemons(
    local: Settings, session_factory: SessionFactory, capsys: Capture
) -> None:
    (group,) = await failing_keys(session_factory, 1)
    now = datetime.now(UTC)
    async with session_factory() as session, session.begin():
        session.add(ServiceState(service="calendar", paused=True, paused_reason="quota",
                                 updated_at=now))
        session.add(DaemonHeartbeat(id="daemon:h:1:x", host="h", pid=1, role="active",
                                    since=now, last_heartbeat=now, clients=[]))
    code, text = await cli(local, capsys, "status")
    code_json, raw = await cli(local, capsys, "status", "--json")
    assert code == code_json == 0
    assert "calendar: disabled, PAUSED (quota)" in text
    assert f"needs_attention discord:{group} attempt 3" in text
    assert "Missing Access" in text
    assert "daemon active   h pid 1" in text
    view = payload(raw)
    assert view["active_daemon"] == "daemon:h:1:x"
    assert view["failing"]["total"] == 1


async def test_retry_queues_the_key_then_refuses_a_second_time(
    local: Settings, session_factory: SessionFactory, capsys: Capture
) -> None:
    (group,) = await failing_keys(session_factory, 1)
    code, out = await cli(local, capsys, "retry", "discord", str(group))
    assert code == 0
    assert payload(out)["queued"] is True
    assert (await key_row(session_factory, "discord", group)).next_attempt_at <= datetime.now(UTC)
    with pytest.raises(Conflict, match="already due"):
        await cli(local, capsys, "retry", "discord", str(group))


async def test_bulk_retry_dry_run_previews_and_starts_nothing(
    local: Settings, session_factory: SessionFactory, capsys: Capture
) -> None:
    await failing_keys(session_factory, 3)
    code, out = await cli(local, capsys, "bulk-retry", "--dry-run", "--json")
    text_code, text = await cli(local, capsys, "bulk-retry", "--dry-run")
    async with session_factory() as session:
        jobs = await session.scalar(select(func.count()).select_from(BulkJob))
    assert (code, text_code) == (0, 0)
    assert (payload(out)["keys"], payload(out)["groups"]) == (3, 3)
    assert "retry 3 failing keys in 3 groups" in text
    assert jobs == 0


async def test_bulk_retry_without_yes_is_not_confirmed_then_bulk_cancel(
    local: Settings, session_factory: SessionFactory, capsys: Capture
) -> None:
    await failing_keys(session_factory, 4)
    refused, out = await cli(local, capsys, "bulk-retry")
    assert refused == 1
    assert "add --yes" in out
    code, out = await cli(local, capsys, "bulk-retry", "--yes", "--no-wait")
    assert code == 0
    async with session_factory() as session:
        job_id = await session.scalar(select(BulkJob.id))
    assert f"bulk job {job_id} queued: 4 keys" in out
    code, out = await cli(local, capsys, "bulk-cancel", str(job_id))
    assert code == 0
    assert "cancelled: 4 keys not started" in out


async def test_resync_dry_run_then_run_marks_records_for_resending_and_owed(
    local: Settings, session_factory: SessionFactory, capsys: Capture
) -> None:
    async with session_factory() as session, session.begin():
        group = await make_group(session)
        user = await make_user(session)
        from core.db.models import Membership
        session.add(Membership(user_id=user.id, group_id=group.id, joined_at=datetime.now(UTC)))
        await make_meeting(session, group)
        session.add(DiscordGrant(group_id=group.id, guild_id="900", kind="channel_overwrite",
                                 target_id=group.discord_text_channel_id,
                                 discord_user_id=user.discord_user_id,
                                 granted_at=datetime.now(UTC)))
    settings = load_settings(database_url=local.database_url,
                             enabled_services="discord,calendar")
    code, out = await cli(settings, capsys, "resync", str(group.id), "--dry-run", "--json")
    preview = payload(out)
    async with session_factory() as session:
        grants_before = await session.scalar(select(func.count()).select_from(DiscordGrant))
    code_run, _ = await cli(settings, capsys, "resync", str(group.id), "--yes")
    async with session_factory() as session:
        grants_after = await session.scalar(select(func.count()).select_from(DiscordGrant))
    assert (code, code_run) == (0, 0)
    # 2 channels x 1 member; 1 meeting; 2 reminder offsets; 2 channel reads + 2 PUTs, one
    # list of the calendar + 1 insert.
    # ... and the items it sends, each as its request.
    assert sorted(preview.pop("sends")) == sorted([
        f"PUT /channels/{channel}/permissions/{user.discord_user_id}"
        for channel in (group.discord_text_channel_id, group.discord_voice_channel_id)
    ] + [f"POST /calendars/{group.calendar_id}/events"])
    assert preview == {"overwrites": 2, "events": 1, "reminders": 2, "calls": 6}
    # The record is kept (so the overwrite stays ours), marked to be sent again.
    assert (grants_before, grants_after) == (1, 1)
    async with session_factory() as session:
        assert await session.scalar(select(DiscordGrant.state)) == "resend"
    assert (await key_row(session_factory, "calendar", group.id)).requested_generation == 1


async def test_pause_resume_and_breaker_reset(
    local: Settings, session_factory: SessionFactory, capsys: Capture
) -> None:
    code, out = await cli(local, capsys, "pause", "discord", "--reason", "incident")
    async with session_factory() as session:
        paused = await session.get(ServiceState, "discord")
        assert paused is not None
        assert (paused.paused, paused.paused_reason) == (True, "incident")
    assert (code, payload(out)["paused"]) == (0, True)
    code, out = await cli(local, capsys, "resume", "discord")
    assert (code, payload(out)["paused"]) == (0, False)
    code, out = await cli(local, capsys, "breaker-reset", "calendar")
    async with session_factory() as session:
        reset = await session.get(ServiceState, "calendar")
    assert code == 0
    assert reset is not None
    assert reset.breaker_reset_requested_at is not None


async def test_a_pause_for_a_window_ends_then_and_status_says_until_when(
    local: Settings, session_factory: SessionFactory, capsys: Capture
) -> None:
    code, out = await cli(local, capsys, "pause", "calendar", "--for", "2h",
                          "--reason", "maintenance")
    until = datetime.fromisoformat(payload(out)["paused_until"])
    assert code == 0
    assert timedelta(minutes=119) < until - datetime.now(UTC) <= timedelta(hours=2)
    code, out = await cli(local, capsys, "status")
    assert "PAUSED (maintenance)" in out
    assert "until" in out
    assert "(in 2 h)" in out or "(in 1 h 59 min)" in out
    with pytest.raises(SystemExit):
        await cli(local, capsys, "pause", "calendar", "--for", "forever")
    assert "not a duration from 1s to 7d" in capsys.readouterr().err


# ---- --api: the same verbs through a running daemon ----------------------------------------
async def test_every_verb_through_the_api(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes, capsys: Capture
) -> None:
    settings, url = daemon.settings, daemon.url
    groups = await failing_keys(admin_sessions, 6)
    code, out = await cli(settings, capsys, "status", "--api", url)
    assert code == 0
    assert "daemon active" in out
    assert f"discord:{groups[0]}" in out
    code, out = await cli(settings, capsys, "retry", "discord", str(groups[0]), "--api", url)
    assert (code, payload(out)["queued"]) == (0, True)
    code, out = await cli(settings, capsys, "bulk-retry", "--dry-run", "--json", "--api", url)
    assert payload(out)["keys"] >= 5
    code, out = await cli(settings, capsys, "bulk-retry", "--yes", "--api", url)
    assert code == 0
    assert "done, 0 failed" in out  # followed to the end, one progress line per change
    assert "remaining)" in out
    code, out = await cli(settings, capsys, "pause", "calendar", "--api", url)
    assert payload(out)["paused"] is True
    code, out = await cli(settings, capsys, "resume", "calendar", "--api", url)
    assert payload(out)["paused"] is False
    code, out = await cli(settings, capsys, "breaker-reset", "discord", "--api", url)
    assert payload(out)["reset_requested"] is True
    code, out = await cli(settings, capsys, "resync", str(groups[1]), "--dry-run", "--api", url)
    assert code == 0
    assert f"force re-sync of group {groups[1]}" in out
    code, out = await cli(settings, capsys, "resync", str(groups[1]), "--yes", "--api", url)
    assert payload(out)["group_id"] == groups[1]


async def test_bulk_cancel_through_the_api_and_a_wrong_token(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes, capsys: Capture
) -> None:
    await failing_keys(admin_sessions, 30)
    fakes.set("discord:*", "ok", sleep=0.3)
    settings, url = daemon.settings, daemon.url
    code, out = await cli(settings, capsys, "bulk-retry", "--yes", "--no-wait", "--api", url)
    queued = next(line for line in out.splitlines() if line.startswith("bulk job"))
    job_id = int(queued.split()[2])
    await wait_for(lambda: len(fakes.runs("discord")) >= 2, timeout=30)
    code, out = await cli(settings, capsys, "bulk-cancel", str(job_id), "--api", url)
    assert code == 0
    assert f"bulk job {job_id} cancelled" in out
    wrong = load_settings(database_url=settings.database_url, admin_token="nope")
    with pytest.raises(ApiError, match="401"):
        await cli(wrong, capsys, "status", "--api", url)
