"""A held key's next run is its re-check (issue 23): every HELD_RECHECK_SECONDS (scaled) the
engine re-plans it against the live state. It stays held for the operator, with the
re-read plan, while the plan removes anyone (a window with room again lets nothing
through), stays held when the re-read fails (Discord answering 500), and runs once
people have removed the access themselves.

Measured before: a held key had no next run at all (``waiting.until`` None, no timer),
so its waiting reason could not say when anything would happen, and a plan made stale by
people's own edits stayed held for good."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db.models import HeldPlan
from core.db.session import SessionFactory
from core.group_joining import sync_after_group_change
from core.sandbox import Sandbox
from tests.e2e.conftest import System, running_system
from tests.e2e.test_deletion_guard import DELETE_OVERWRITE, admin, empty, populated
from tests.waiting import wait_for
from tests.world import sandbox_settings

# Nominal seconds: 5 s at the tests' time scale, room for a loaded machine to read the
# row between two re-checks (1.5 s was too little beside a browser test).
RECHECK = 500.0


@pytest.fixture
async def system(
    sandbox: Sandbox, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[System]:
    settings = sandbox_settings(sandbox, database_url, tmp_path, held_recheck_seconds=RECHECK,
                                enabled_services=("discord",))
    async with running_system(settings, sandbox, session_factory) as running:
        yield running


async def _held_at(system: System, group_id: int) -> tuple[str, datetime | None, datetime | None]:
    row = await system.state("discord", group_id)
    return row.status, _aware(row.next_attempt_at), _aware(row.last_attempt_at)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def test_a_held_key_is_re_checked_on_its_timer_and_stays_held_until_nobody_is_left(
    system: System,
) -> None:
    world = system.world
    group, users = await populated(world, 20)
    await empty(world, group)
    await sync_after_group_change(group.id)

    async def held() -> bool:  # a call answered late on a loaded machine: its retry
        return (await _held_at(system, group.id))[0] == "held"

    # Held, with a future next run: its re-check, in the row and in its waiting reason.
    await wait_for(held, timeout=60, message="the emptied group's key held")
    status, recheck_at, first_run = await _held_at(system, group.id)
    assert status == "held"
    assert recheck_at is not None
    assert recheck_at > datetime.now(UTC)
    waiting = (await admin(system).key("discord", group.id))["waiting"]
    assert waiting["code"] == "held"
    assert datetime.fromisoformat(waiting["until"]) == recheck_at
    assert "re-checked against the live state at" in waiting["detail"]

    # The re-check runs by itself and holds it again: nothing removed, a later re-check.
    world.clear_calls()

    async def rechecked() -> bool:
        status, _at, ran = await _held_at(system, group.id)
        return status == "held" and ran is not None and first_run is not None and ran > first_run

    await wait_for(rechecked, timeout=30, message="the held key's re-check")
    assert world.calls()[DELETE_OVERWRITE] == 0
    assert len(world.member_overwrites(group.discord_text_channel_id)) == 20
    (item,) = await admin(system).held()
    assert item["decision"] == "pending"
    assert item["removals"] == 20

    # A re-check whose live read fails leaves the key held, not retrying.
    _status, _at, before_failure = await _held_at(system, group.id)
    world.sandbox.discord.inject("5xx")

    async def failed_recheck() -> bool:  # claimed after the faults, and recorded
        status, _a, ran = await _held_at(system, group.id)
        return status == "held" and ran is not None and before_failure is not None and (
            ran > before_failure)

    await wait_for(failed_recheck, timeout=30, message="a re-check against Discord's 500s")
    status, recheck_at, _ran = await _held_at(system, group.id)
    assert status == "held"
    assert recheck_at is not None
    assert recheck_at > datetime.now(UTC)
    assert (await admin(system).key("discord", group.id))["waiting"]["code"] == "held"
    world.sandbox.discord.clear_faults()

    # People remove the access themselves: the next re-check finds nobody to remove and
    # the key settles without an operator, its held plan gone.
    for channel in (group.discord_text_channel_id, group.discord_voice_channel_id):
        assert channel is not None
        for user in users:
            assert user.discord_user_id is not None
            # As a moderator in Discord's UI (the fake's state, with its gateway news).
            world.sandbox.discord.state.delete_overwrite(channel, user.discord_user_id)

    async def settled() -> bool:
        return (await system.state("discord", group.id)).status == "ok"

    await wait_for(settled, timeout=30, message="the re-check to find nobody left to remove")
    assert world.member_overwrites(group.discord_text_channel_id) == set()
    async with world.sessions() as session:
        assert (await session.execute(select(HeldPlan))).first() is None
