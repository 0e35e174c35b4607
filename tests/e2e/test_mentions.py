"""A reminder pings the members it names and nobody else, whatever the group is called."""

from __future__ import annotations

from sqlalchemy import update

from core.db.models import Group
from core.group_joining import sync_after_group_change
from core.sandbox.discord_permissions import MENTION_EVERYONE
from core.sandbox.discord_state import DEFAULT_BOT_PERMISSIONS
from tests.e2e.conftest import System
from tests.world import GUILD


async def test_a_group_named_everyone_yields_a_reminder_that_pings_only_its_member(
    system: System,
) -> None:
    world, discord = system.world, system.sandbox.discord
    # A bot that may ping everyone, and a mentionable role 1: the fake would ping both.
    discord.set_bot_permissions(GUILD, DEFAULT_BOT_PERMISSIONS | MENTION_EVERYONE)
    discord.add_role(GUILD, 1, 1, mentionable=True)
    group, member, outsider = await world.add_group(meetings=1), *[
        await world.add_user() for _ in range(2)]
    async with world.sessions() as session, session.begin():
        await session.execute(update(Group).where(Group.id == group.id).values(
            name=f"@everyone <@&1> study <@{outsider.discord_user_id}>"))
    await world.join(member, group)
    await sync_after_group_change(group.id)

    scheduler = system.runtime.scheduler
    assert scheduler is not None
    job = next(j for j in scheduler.get_jobs() if j.id.startswith("reminder_"))
    assert await job.func(**job.kwargs) == "sent"

    (message,) = discord.messages(group.discord_text_channel_id or "")
    assert "@everyone <@&1>" in message["content"]
    (ping,) = discord.pings(group.discord_text_channel_id)
    assert (ping["everyone"], ping["roles"], ping["users"]) == (
        False, [], [member.discord_user_id])
