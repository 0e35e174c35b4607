"""The service layer straight on the database, with no daemon: what the CLI relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from core.admin.errors import Conflict, Invalid, NotFound
from core.admin.keys import KeyFilter
from core.admin.service import AdminService
from core.config import load_settings
from core.db.models import SyncState, SyncType
from core.db.session import SessionFactory
from core.engine.running.history import KEEP_PER_KEY, record_attempt
from core.engine.running.state import SyncKey
from tests.admin.helpers import failing_keys, key_row


@pytest.fixture
def service(session_factory: SessionFactory, database_url: str) -> AdminService:
    return AdminService(session_factory, load_settings(database_url=database_url))


async def test_retry_makes_a_backed_off_key_due_now_keeping_its_attempts(
    service: AdminService, session_factory: SessionFactory
) -> None:
    (group,) = await failing_keys(session_factory, 1)
    await service.retry("discord", group, via="test")
    row = await key_row(session_factory, "discord", group)
    assert row.attempt == 3
    assert row.next_attempt_at is not None
    assert row.next_attempt_at <= datetime.now(UTC)
    with pytest.raises(Conflict, match="already due"):
        await service.retry("discord", group, via="test")


async def test_retry_is_refused_while_the_key_runs_and_for_an_unknown_group(
    service: AdminService, session_factory: SessionFactory
) -> None:
    (group,) = await failing_keys(session_factory, 1)
    async with session_factory() as session, session.begin():
        await session.execute(update(SyncState).values(
            lease_owner="daemon:x:1:abc", lease_expires_at=datetime.now(UTC) + timedelta(minutes=5),
            status="running"))
    with pytest.raises(Conflict, match="running"):
        await service.retry("discord", group, via="test")
    with pytest.raises(NotFound, match="unknown group"):
        await service.retry("discord", 424242, via="test")
    with pytest.raises(Invalid, match="sync type"):
        await service.retry("slack", group, via="test")


async def test_keys_are_filtered_and_paged(
    service: AdminService, session_factory: SessionFactory
) -> None:
    await failing_keys(session_factory, 3, "discord")
    await failing_keys(session_factory, 2, "rsvps")
    calendar = await service.list_keys(KeyFilter(service="calendar"), limit=1)
    discord = await service.list_keys(KeyFilter(service="discord", status="needs_attention"))
    page2 = await service.list_keys(KeyFilter(), limit=2, offset=2)
    assert (calendar["total"], len(calendar["items"])) == (2, 1)
    assert discord["total"] == 3
    assert page2["total"] == 5
    assert len(page2["items"]) == 2
    with pytest.raises(Invalid, match="unknown status"):
        await service.list_keys(KeyFilter(status="broken"))


async def test_attempt_history_keeps_only_the_newest(
    service: AdminService, session_factory: SessionFactory
) -> None:
    (group,) = await failing_keys(session_factory, 1)
    start = datetime.now(UTC)
    for n in range(KEEP_PER_KEY + 5):
        await record_attempt(session_factory, SyncKey(SyncType.DISCORD, group),
                             at=start + timedelta(seconds=n), outcome="needs_attention",
                             error=f"Missing Access #{n}", duration_ms=3.0, attempt=n)
    detail = await service.key("discord", group)
    from sqlalchemy import func, select

    from core.db.models import SyncAttempt
    async with session_factory() as session:
        kept = await session.scalar(select(func.count()).select_from(SyncAttempt))
    assert kept == KEEP_PER_KEY
    assert detail["history"][0]["error"] == f"Missing Access #{KEEP_PER_KEY + 4}"
    assert detail["history"][0]["attempt"] == KEEP_PER_KEY + 4


async def test_pause_and_resume_are_rows_every_process_reads(
    service: AdminService, session_factory: SessionFactory
) -> None:
    from core.engine.running.pauses import PauseFlags

    flags = PauseFlags(session_factory, ttl=0)
    await service.pause("discord", via="test", reason="Discord incident")
    paused = await flags.is_paused(SyncType.DISCORD)
    reminders = await flags.is_paused(SyncType.REMINDERS)
    overview = await service.overview()
    await service.resume("discord", via="test")
    assert (paused, reminders) == (True, False)
    assert not await flags.is_paused(SyncType.DISCORD)
    discord = next(s for s in overview["services"] if s["name"] == "discord")
    assert (discord["paused"], discord["paused_reason"]) == (True, "Discord incident")
    with pytest.raises(Invalid, match="unknown service"):
        await service.pause("slack", via="test")


async def test_actions_are_audited_with_scope_and_interface(
    service: AdminService, session_factory: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    (group,) = await failing_keys(session_factory, 1)
    await service.retry("discord", group, via="cli")
    out = capsys.readouterr()
    line = next(line for line in (out.out + out.err).splitlines() if "admin_action" in line)
    assert "retry" in line
    assert "cli" in line
    assert str(group) in line
