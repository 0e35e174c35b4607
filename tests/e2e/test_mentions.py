"""A reminder pings the members it names and nobody else, whatever the group is called."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update

from core.db.models import Group
from core.db.session import SessionFactory
from core.sandbox import Sandbox, start_sandbox
from core.sandbox.discord_permissions import MENTION_EVERYONE
from core.sandbox.discord_state import DEFAULT_BOT_PERMISSIONS
from tests.e2e.reminder_world import (
    daemon_in_process,
    due_in,
    reminder_row,
    seed_group,
    write_rows_as_an_application,
)
from tests.waiting import wait_for
from tests.world import GUILD, sandbox_settings

SCALE = 0.05


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with start_sandbox(time_scale=SCALE) as sandbox:
        sandbox.discord.add_guild(GUILD, bot_role_position=50)
        yield sandbox


async def test_a_group_named_everyone_yields_a_reminder_that_pings_only_its_member(
    sandbox: Sandbox, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> None:
    # A bot that may ping everyone, and a mentionable role 1: the fake would ping both.
    sandbox.discord.set_bot_permissions(GUILD, DEFAULT_BOT_PERMISSIONS | MENTION_EVERYONE)
    sandbox.discord.add_role(GUILD, 1, 1, mentionable=True)
    seeded = await seed_group(session_factory, sandbox, [due_in(1.0)])
    async with session_factory() as session, session.begin():
        await session.execute(update(Group).where(Group.id == seeded.group_id).values(
            name="@everyone <@&1> study"))
    await write_rows_as_an_application(session_factory, seeded.group_id)
    settings = sandbox_settings(sandbox, database_url, tmp_path, time_scale=SCALE)

    async def sent() -> bool:
        return (await reminder_row(session_factory, seeded.meeting_ids[0])).status == "sent"

    async with daemon_in_process(settings):
        await wait_for(sent, timeout=30, interval=0.01, message="the reminder to be sent")

    (message,) = sandbox.discord.messages(seeded.channel_id)
    assert "@everyone <@&1>" in message["content"]
    (ping,) = sandbox.discord.pings(seeded.channel_id)
    assert (ping["everyone"], ping["roles"], ping["users"]) == (
        False, [], [seeded.member_discord_id])
