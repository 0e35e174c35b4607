"""A group's channel deleted in Discord is a missing target: the sync names the channel
and the column, makes no write on it (Discord would answer 10003 to each), still
converges the group's other channel, and keeps our records until the column is fixed;
then the records on the old channel are dropped and the new channel granted."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from core.db.models import Group, SyncType
from core.errors import MissingTargetError
from tests.world import GUILD, World


async def test_a_deleted_channel_names_itself_and_its_column_and_gets_no_write(
    world: World,
) -> None:
    group, ann = await world.group_with_member(meetings=0)
    text, voice = group.discord_text_channel_id, group.discord_voice_channel_id
    assert text is not None
    assert voice is not None
    await world.sync(SyncType.DISCORD, group.id)
    world.sandbox.discord.delete_channel(text)
    bob = await world.add_user()
    await world.join(bob, group)
    world.clear_calls()

    with pytest.raises(MissingTargetError) as caught:
        await world.sync(SyncType.DISCORD, group.id)

    error = caught.value
    assert (error.target_id, error.setting, error.code) == (
        text, "groups.discord_text_channel_id", 10003)
    assert text in str(error)
    assert "groups.discord_text_channel_id" in str(error)
    assert world.calls()["PUT /channels/{channel_id}/permissions/{target}"] == 1  # bob, voice
    assert world.member_overwrites(voice) == {ann.discord_user_id, bob.discord_user_id}
    assert ("channel_overwrite", text, ann.discord_user_id) in await world.grants(group.id)


async def test_once_the_column_names_a_live_channel_the_old_records_go(world: World) -> None:
    group, ann = await world.group_with_member(meetings=0)
    old = group.discord_text_channel_id
    assert old is not None
    await world.sync(SyncType.DISCORD, group.id)
    world.sandbox.discord.delete_channel(old)
    new = "819999999999999999"
    world.sandbox.discord.add_channel(new, GUILD, "replacement", type=0)
    async with world.sessions() as session, session.begin():
        await session.execute(
            update(Group).where(Group.id == group.id).values(discord_text_channel_id=new))

    await world.sync(SyncType.DISCORD, group.id)

    assert world.member_overwrites(new) == {ann.discord_user_id}
    assert not any(target == old for _, target, _ in await world.grants(group.id))
