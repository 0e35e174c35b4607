"""The Discord adapter against what real Discord does: its own base URL per client,
mention-safe messages, channel overwrites that deny the bot, Cloudflare's HTML 5xx."""

from __future__ import annotations

import asyncio
import time

import pytest
from discord.http import Route

from core.clients.discord_adapter import DiscordAdapter
from core.clients.limits import ClientLimits
from core.errors import NeedsAttentionError, TransientError
from core.lanes import Lane
from core.sandbox import Sandbox, start_sandbox
from core.sandbox.discord_permissions import MANAGE_ROLES, MENTION_EVERYONE
from core.sandbox.discord_state import DEFAULT_BOT_PERMISSIONS
from tests.clients.conftest import ALICE, BOB, GUILD, SCALE, TEXT, VOICE, MakeDiscord, routes

INTER = Lane.INTERACTIVE
PUT_OVERWRITE = "PUT /channels/{channel_id}/permissions/{target}"
GET_CHANNEL = "GET /channels/{channel_id}"
VIEW = 1024


async def test_two_clients_with_different_base_urls_each_reach_their_own_server(
    sandbox: Sandbox, make_discord: MakeDiscord
) -> None:
    async with start_sandbox(time_scale=SCALE.factor) as other:
        other.discord.add_guild(GUILD)
        other.discord.add_channel(TEXT, GUILD, "elsewhere", type=0)
        other.discord.add_user(ALICE, "alice")
        here = await make_discord()
        options = ClientLimits().discord(other.discord_base_url, SCALE)
        there = DiscordAdapter(other.discord_bot_token, options, time.monotonic)
        await there.start()
        try:
            await asyncio.gather(*(
                call for _ in range(3) for call in (
                    here.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "here"),
                    there.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "there"),
                )
            ))
        finally:
            await there.close()
        assert routes(sandbox.discord, PUT_OVERWRITE) == [204] * 3
        assert routes(other.discord, PUT_OVERWRITE) == [204] * 3
        assert {r.audit_reason for r in sandbox.discord.request_log if r.audit_reason} == {"here"}
        assert {r.audit_reason for r in other.discord.request_log if r.audit_reason} == {"there"}
    assert Route.BASE == "https://discord.com/api/v10"


async def test_a_message_pings_only_the_users_it_names(
    sandbox: Sandbox, discord_client: DiscordAdapter
) -> None:
    sandbox.discord.set_bot_permissions(GUILD, DEFAULT_BOT_PERMISSIONS | MENTION_EVERYONE)
    sandbox.discord.add_role(GUILD, 1, 1, mentionable=True)
    content = f"@everyone <@&1> study: <@{ALICE}> <@{BOB}> @here"

    await discord_client.send_message(TEXT, content, "n-1", INTER, mention_user_ids=[ALICE])
    await discord_client.send_message(TEXT, content, "n-2", INTER)

    named, plain = sandbox.discord.pings(TEXT)
    assert (named["everyone"], named["roles"], named["users"]) == (False, [], [ALICE])
    assert (plain["everyone"], plain["roles"], plain["users"]) == (False, [], [])


async def test_a_channel_overwrite_denying_the_bot_needs_attention(
    sandbox: Sandbox, discord_client: DiscordAdapter
) -> None:
    sandbox.discord.set_foreign_overwrite(TEXT, sandbox.discord.bot_user_id, 1,
                                          deny=MANAGE_ROLES)

    with pytest.raises(NeedsAttentionError) as caught:
        await discord_client.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "join")

    assert (caught.value.status, caught.value.code) == (403, 50013)
    assert "Missing Permissions" in str(caught.value)
    await discord_client.set_member_overwrite(VOICE, ALICE, VIEW, 0, INTER, "join")


async def test_an_html_503_from_cloudflare_is_retried(
    sandbox: Sandbox, discord_client: DiscordAdapter
) -> None:
    sandbox.discord.inject("html_5xx", count=1, status=503, route=GET_CHANNEL)

    assert await discord_client.channel_overwrites(TEXT, INTER) == {}

    assert routes(sandbox.discord, GET_CHANNEL) == [503, 200]


async def test_a_lasting_html_503_is_transient_and_does_not_quote_the_page(
    sandbox: Sandbox, discord_client: DiscordAdapter
) -> None:
    sandbox.discord.inject("html_5xx", status=503, route=GET_CHANNEL)

    with pytest.raises(TransientError) as caught:
        await discord_client.channel_overwrites(TEXT, INTER)

    assert "503" in str(caught.value)
    assert "Cloudflare" in str(caught.value)
    assert "<" not in str(caught.value)
    assert routes(sandbox.discord, GET_CHANNEL) == [503, 503, 503]  # two quick retries
