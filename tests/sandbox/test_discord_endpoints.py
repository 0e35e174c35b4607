"""The Discord endpoints groupsync uses, driven by unmodified discord.py (REST only)."""

from __future__ import annotations

import aiohttp
import discord
import pytest

from core.sandbox import Sandbox
from tests.sandbox.conftest import Seeded


async def test_login_reads_current_user_and_application(sb: Sandbox, bot: discord.Client) -> None:
    assert bot.user is not None
    assert str(bot.user.id) == sb.discord.bot_user_id
    assert bot.application_id is not None
    assert sb.discord.counts()[("GET /oauth2/applications/@me", 200)] == 1


async def test_bad_token_fails_login(sb: Sandbox, point_discord: object) -> None:
    point_discord(sb)  # type: ignore[operator]
    client = discord.Client(intents=discord.Intents.none())
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()
    assert sb.discord.counts()[("GET /users/@me", 401)] == 1


async def test_responses_are_exactly_application_json(sb: Sandbox) -> None:
    headers = {"Authorization": f"Bot {sb.discord_bot_token}"}
    async with aiohttp.ClientSession() as http, \
            http.get(sb.discord_base_url + "/users/@me", headers=headers) as response:
        assert response.headers["Content-Type"] == "application/json"


async def test_fetch_channel_shows_overwrites(sb: Sandbox, bot: discord.Client,
                                              ids: Seeded) -> None:
    sb.discord.set_foreign_overwrite(ids.text, ids.bob, type=1, allow=1024)
    channel = await bot.fetch_channel(ids.text)
    assert isinstance(channel, discord.TextChannel)
    assert channel.guild.id == ids.guild
    assert [target.id for target in channel.overwrites] == [ids.bob]


async def test_member_and_role_overwrites_put_and_delete(sb: Sandbox, bot: discord.Client,
                                                         ids: Seeded) -> None:
    channel = await bot.fetch_channel(ids.voice)
    assert isinstance(channel, discord.VoiceChannel)
    member = await channel.guild.fetch_member(ids.alice)
    role = next(r for r in await channel.guild.fetch_roles() if r.id == ids.low_role)
    grant = discord.PermissionOverwrite(view_channel=True, connect=True)
    await channel.set_permissions(member, overwrite=grant, reason="joined group 1")
    await channel.set_permissions(role, overwrite=discord.PermissionOverwrite(speak=False))
    assert sb.discord.overwrites(ids.voice) == {
        str(ids.alice): {"type": 1, "allow": (1 << 10) | (1 << 20), "deny": 0},
        str(ids.low_role): {"type": 0, "allow": 0, "deny": 1 << 21},
    }
    assert sb.discord.request_log[-2].audit_reason == "joined group 1"
    await channel.set_permissions(member, overwrite=None)
    assert list(sb.discord.overwrites(ids.voice)) == [str(ids.low_role)]


async def test_add_and_remove_member_role(sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    guild = await bot.fetch_guild(ids.guild)
    member = await guild.fetch_member(ids.alice)
    await member.add_roles(discord.Object(ids.low_role))
    assert sb.discord.member_roles(ids.guild, ids.alice) == [str(ids.low_role)]
    await member.remove_roles(discord.Object(ids.low_role))
    assert sb.discord.member_roles(ids.guild, ids.alice) == []


async def test_dm_with_nonce_is_sent_once(sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    user = await bot.fetch_user(ids.alice)
    first = await user.send("Meeting in 1 hour", nonce="reminder-12-60")
    again = await user.send("Meeting in 1 hour", nonce="reminder-12-60")
    assert first.id == again.id
    assert [m["content"] for m in sb.discord.dm_messages(ids.alice)] == ["Meeting in 1 hour"]
    assert sb.discord.counts()[("POST /users/@me/channels", 200)] == 1


async def test_channel_message(sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    channel = await bot.fetch_channel(ids.text)
    assert isinstance(channel, discord.TextChannel)
    await channel.send("Welcome!")
    assert [m["content"] for m in sb.discord.messages(ids.text)] == ["Welcome!"]


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        ("unknown_channel", 404, 10003),
        ("unknown_guild", 404, 10004),
        ("unknown_member", 404, 10007),
        ("unknown_role", 404, 10011),
        ("unknown_user", 404, 10013),
        ("missing_access", 403, 50001),
        ("cannot_message", 403, 50007),
        ("role_above_bot", 403, 50013),
        ("invalid_form", 400, 50035),
    ],
)
async def test_error_codes(bot: discord.Client, ids: Seeded, call: str, status: int,
                           code: int) -> None:
    calls = {
        "unknown_channel": lambda: bot.fetch_channel(999),
        "unknown_guild": lambda: bot.fetch_guild(999),
        "unknown_member": lambda: bot.http.get_member(ids.guild, ids.bob),
        "unknown_role": lambda: bot.http.add_role(ids.guild, ids.alice, 999),
        "unknown_user": lambda: bot.fetch_user(999),
        "missing_access": lambda: bot.fetch_channel(ids.hidden),
        "cannot_message": lambda: _dm(bot, ids.no_dms),
        "role_above_bot": lambda: bot.http.add_role(ids.guild, ids.alice, ids.high_role),
        "invalid_form": lambda: bot.http.edit_channel_permissions(ids.text, ids.alice, "0", "0", 7),
    }
    with pytest.raises(discord.HTTPException) as caught:
        await calls[call]()
    assert (caught.value.status, caught.value.code) == (status, code)
    if code == 50035:
        assert "type" in caught.value.text


async def _dm(bot: discord.Client, user_id: int) -> None:
    user = await bot.fetch_user(user_id)
    await user.send("hello")


async def test_deleted_channel_is_unknown(sb: Sandbox, bot: discord.Client, ids: Seeded) -> None:
    sb.discord.delete_channel(ids.voice)
    with pytest.raises(discord.NotFound) as caught:
        await bot.fetch_channel(ids.voice)
    assert caught.value.code == 10003
