"""The fake Discord parses mentions as Discord does and computes the bot's permissions in a
channel from its roles and the channel's (and category's) overwrites."""

from __future__ import annotations

import discord
import pytest

from core.sandbox import Sandbox
from core.sandbox.discord_permissions import MANAGE_ROLES, MENTION_EVERYONE, SEND_MESSAGES
from core.sandbox.discord_state import DEFAULT_BOT_PERMISSIONS
from tests.sandbox.conftest import Seeded

CATEGORY = 333333333333333339
FILED = 333333333333333340
PING_ROLE = 1


def _can_ping(sb: Sandbox, ids: Seeded) -> None:
    sb.discord.set_bot_permissions(ids.guild, DEFAULT_BOT_PERMISSIONS | MENTION_EVERYONE)
    sb.discord.add_role(ids.guild, PING_ROLE, 1, mentionable=True)


async def test_without_allowed_mentions_everything_in_content_pings(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    _can_ping(sb, ids)
    channel = await bot.fetch_channel(ids.text)
    assert isinstance(channel, discord.TextChannel)
    await bot.http.send_message(channel.id, params=discord.http.handle_message_parameters(
        content=f"@everyone <@&{PING_ROLE}> study with <@{ids.alice}>"))
    (ping,) = sb.discord.pings(ids.text)
    assert ping["everyone"] is True
    assert ping["roles"] == [str(PING_ROLE)]
    assert ping["users"] == [str(ids.alice)]


async def test_allowed_mentions_limit_who_is_pinged(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    _can_ping(sb, ids)
    channel = await bot.fetch_channel(ids.text)
    assert isinstance(channel, discord.TextChannel)
    content = f"@everyone <@&{PING_ROLE}> <@{ids.alice}> <@{ids.no_dms}>"
    only_alice = discord.AllowedMentions(everyone=False, roles=False,
                                         users=[discord.Object(ids.alice)])
    message = await channel.send(content, allowed_mentions=only_alice)
    await channel.send(content, allowed_mentions=discord.AllowedMentions.none())
    first, second = sb.discord.pings(ids.text)
    assert (first["everyone"], first["roles"], first["users"]) == (False, [], [str(ids.alice)])
    assert (second["everyone"], second["roles"], second["users"]) == (False, [], [])
    assert [m.id for m in message.mentions] == [ids.alice]
    assert not message.mention_everyone


async def test_everyone_needs_the_mention_everyone_permission(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    channel = await bot.fetch_channel(ids.text)
    assert isinstance(channel, discord.TextChannel)
    await channel.send("@everyone hello")
    assert sb.discord.pings(ids.text)[0]["everyone"] is False


async def test_a_channel_overwrite_denying_the_bot_refuses_overwrites_with_50013(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    sb.discord.set_foreign_overwrite(ids.text, sb.discord.bot_user_id, 1, deny=MANAGE_ROLES)
    with pytest.raises(discord.Forbidden) as caught:
        await bot.http.edit_channel_permissions(ids.text, ids.alice, "1024", "0", 1)
    assert (caught.value.status, caught.value.code) == (403, 50013)
    await bot.http.edit_channel_permissions(ids.voice, ids.alice, "1024", "0", 1)  # elsewhere ok


async def test_a_category_overwrite_denying_the_bot_applies_to_its_channels(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    sb.discord.add_channel(CATEGORY, ids.guild, "groups", type=4)
    sb.discord.add_channel(FILED, ids.guild, "group-9", type=0, parent_id=CATEGORY)
    bot_role = next(r for r in sb.discord.state.guilds[str(ids.guild)].roles.values()
                    if r.name == "groupsync")
    sb.discord.set_foreign_overwrite(CATEGORY, bot_role.id, 0, deny=SEND_MESSAGES | MANAGE_ROLES)
    with pytest.raises(discord.Forbidden) as caught:
        await bot.http.edit_channel_permissions(FILED, ids.alice, "1024", "0", 1)
    assert caught.value.code == 50013
    with pytest.raises(discord.Forbidden) as caught:
        await bot.http.send_message(FILED, params=discord.http.handle_message_parameters(
            content="hello"))
    assert caught.value.code == 50013


async def test_a_channel_in_a_category_names_its_parent(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    sb.discord.add_channel(CATEGORY, ids.guild, "groups", type=4)
    sb.discord.add_channel(FILED, ids.guild, "group-9", type=0, parent_id=CATEGORY)
    assert (await bot.http.get_channel(FILED))["parent_id"] == str(CATEGORY)
    assert (await bot.http.get_channel(ids.text))["parent_id"] is None


async def test_hiding_a_channel_from_everyone_hides_it_from_the_bot(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    sb.discord.set_foreign_overwrite(ids.text, ids.guild, 0, deny=1 << 10)
    with pytest.raises(discord.Forbidden) as caught:
        await bot.fetch_channel(ids.text)
    assert caught.value.code == 50001


async def test_html_503_from_cloudflare(sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    sb.discord.inject("html_5xx", count=1, status=503)
    with pytest.raises(discord.DiscordServerError) as caught:
        await bot.http.get_channel(ids.text)
    assert caught.value.status == 503
    assert "cloudflare" in caught.value.text.lower()
    assert sb.discord.counts()[("GET /channels/{channel_id}", 503)] == 1
