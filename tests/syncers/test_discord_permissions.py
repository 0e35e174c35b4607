"""A channel overwrite that denies the bot refuses our grants with 50013, as real Discord
does: the sync needs attention with Discord's message, and the other channel still
converges."""

from __future__ import annotations

import pytest

from core.db.models import SyncType
from core.errors import NeedsAttentionError
from core.sandbox.discord_permissions import MANAGE_ROLES
from tests.world import World


async def test_a_channel_overwrite_denying_the_bot_needs_attention(world: World) -> None:
    group, ann = await world.group_with_member(meetings=0)
    discord = world.sandbox.discord
    assert group.discord_text_channel_id is not None
    discord.set_foreign_overwrite(group.discord_text_channel_id, discord.bot_user_id, 1,
                                  deny=MANAGE_ROLES)

    with pytest.raises(NeedsAttentionError) as caught:
        await world.sync(SyncType.DISCORD, group.id)

    assert (caught.value.status, caught.value.code) == (403, 50013)
    assert "Missing Permissions" in str(caught.value)
    assert world.member_overwrites(group.discord_text_channel_id) == {discord.bot_user_id}
    assert world.member_overwrites(group.discord_voice_channel_id) == {ann.discord_user_id}
