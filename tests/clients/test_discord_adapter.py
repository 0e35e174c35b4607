"""The Discord adapter through discord.py against the fake Discord: outcomes and errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from core.clients.discord_adapter import DiscordAdapter, discord_nonce
from core.clients.limits import ClientLimits
from core.clients.ports import MEMBER_OVERWRITE, Overwrite
from core.clients.probes import Verdict
from core.errors import (
    CredentialsRejectedError,
    NeedsAttentionError,
    RateLimitedError,
    TransientError,
)
from core.lanes import Lane
from core.sandbox import Sandbox
from tests.clients.conftest import ALICE, BOB, GUILD, ROLE, TEXT, MakeDiscord, routes

INTER = Lane.INTERACTIVE
PUT_OVERWRITE = "PUT /channels/{channel_id}/permissions/{target}"
POST_MESSAGE = "POST /channels/{channel_id}/messages"
VIEW = 1024


async def test_set_read_and_delete_a_member_overwrite(discord_client: DiscordAdapter,
                                                       sandbox: Sandbox) -> None:
    await discord_client.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "joined group 1")

    assert await discord_client.channel_overwrites(TEXT, INTER) == {
        ALICE: Overwrite(ALICE, MEMBER_OVERWRITE, VIEW, 0)}
    assert routes(sandbox.discord, PUT_OVERWRITE) == [204]
    assert sandbox.discord.request_log[-2].audit_reason == "joined group 1"

    await discord_client.delete_member_overwrite(TEXT, ALICE, INTER, "left group 1")

    assert sandbox.discord.overwrites(TEXT) == {}


async def test_deleting_an_overwrite_twice_is_fine(discord_client: DiscordAdapter,
                                                   sandbox: Sandbox) -> None:
    await discord_client.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "join")

    await discord_client.delete_member_overwrite(TEXT, ALICE, INTER, "leave")
    await discord_client.delete_member_overwrite(TEXT, ALICE, INTER, "leave (retried)")

    assert sandbox.discord.overwrites(TEXT) == {}


async def test_add_and_remove_a_role_idempotently(discord_client: DiscordAdapter,
                                                  sandbox: Sandbox) -> None:
    await discord_client.add_member_role(GUILD, BOB, ROLE, INTER, "join")
    assert ROLE in sandbox.discord.member_roles(GUILD, BOB)

    await discord_client.remove_member_role(GUILD, BOB, ROLE, INTER, "leave")
    await discord_client.remove_member_role(GUILD, BOB, ROLE, INTER, "leave (retried)")
    sandbox.discord.remove_member(GUILD, BOB)
    await discord_client.remove_member_role(GUILD, BOB, ROLE, INTER, "left the server")

    assert sandbox.discord.member_roles(GUILD, ALICE) == []


async def test_a_retried_post_with_the_same_nonce_is_one_message(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    nonce = "reminder-meeting-42-offset-1440-group-7"  # longer than Discord's 25

    first = await discord_client.send_message(TEXT, "Meeting tomorrow", nonce, INTER)
    second = await discord_client.send_message(TEXT, "Meeting tomorrow", nonce, INTER)

    assert first == second
    assert [m["content"] for m in sandbox.discord.messages(TEXT)] == ["Meeting tomorrow"]
    assert len(discord_nonce(nonce)) == 25


async def test_own_messages_since_finds_a_post_made_before_a_crash(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    await discord_client.send_message(TEXT, "Reminder: Group 1 meets in 1 hour", "gsr1o60", INTER)
    await discord_client.send_message(TEXT, "Reminder: Group 1 meets in 1 minutes", "gsr1o1", INTER)

    found = await discord_client.own_messages_since(TEXT, since, INTER)
    none_later = await discord_client.own_messages_since(
        TEXT, datetime.now(UTC) + timedelta(seconds=5), INTER
    )

    assert [m.content for m in found] == [
        "Reminder: Group 1 meets in 1 hour", "Reminder: Group 1 meets in 1 minutes",
    ]
    assert none_later == []


async def test_unknown_channel_needs_attention_with_discords_message(
        discord_client: DiscordAdapter) -> None:
    with pytest.raises(NeedsAttentionError) as caught:
        await discord_client.channel_overwrites("199999999999999999", INTER)

    assert (caught.value.status, caught.value.code) == (404, 10003)
    assert str(caught.value) == "Unknown Channel"


async def test_missing_permission_needs_attention(discord_client: DiscordAdapter,
                                                  sandbox: Sandbox) -> None:
    sandbox.discord.add_role(GUILD, "100000000000000099", 50, name="admins")

    with pytest.raises(NeedsAttentionError) as caught:
        await discord_client.add_member_role(GUILD, ALICE, "100000000000000099", INTER, "join")

    assert (caught.value.status, caught.value.code) == (403, 50013)


async def test_a_rejected_token_at_login_names_the_setting_not_the_token(
        make_discord: MakeDiscord) -> None:
    adapter = await make_discord(token="not-the-real-token")

    with pytest.raises(NeedsAttentionError) as caught:
        await adapter.channel_overwrites(TEXT, INTER)

    assert "DISCORD_BOT_TOKEN" in str(caught.value)
    assert "not-the-real-token" not in str(caught.value)
    assert caught.value.status == 401


async def test_a_token_revoked_after_login_is_rejected_and_no_call_goes_out_until_a_probe_works(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    await discord_client.channel_overwrites(TEXT, INTER)
    fault = sandbox.discord.inject("revoked_token")

    with pytest.raises(CredentialsRejectedError) as caught:
        await discord_client.channel_overwrites(TEXT, INTER)
    sent = len(sandbox.discord.request_log)
    with pytest.raises(CredentialsRejectedError):
        await discord_client.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "join")
    assert len(sandbox.discord.request_log) == sent  # refused here, not sent
    assert (await discord_client.probe()).verdict is Verdict.REJECTED
    fault.clear()

    assert caught.value.status == 401
    assert caught.value.words == "401: Unauthorized"  # Discord's own
    assert caught.value.variable == "DISCORD_BOT_TOKEN"
    assert (await discord_client.probe()).verdict is Verdict.OK
    assert await discord_client.channel_overwrites(TEXT, INTER) == {}


async def test_a_429_storm_is_never_a_rejection(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    sandbox.discord.inject("429", retry_after=500.0)

    for _ in range(3):
        with pytest.raises(RateLimitedError):
            await discord_client.channel_overwrites(TEXT, INTER)

    assert discord_client.credentials_rejected is None


async def test_one_500_is_absorbed_by_the_librarys_own_retry(
        make_discord: MakeDiscord, sandbox: Sandbox) -> None:
    adapter = await make_discord(ClientLimits(client_call_timeout_seconds=300))
    sandbox.discord.inject("5xx", count=1, status=500, route=PUT_OVERWRITE)

    await adapter.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "join")  # ~1 s: its sleep

    assert routes(sandbox.discord, PUT_OVERWRITE) == [500, 204]


async def test_a_json_503_from_discord_is_transient_at_once(discord_client: DiscordAdapter,
                                                            sandbox: Sandbox) -> None:
    sandbox.discord.inject("5xx", count=1, status=503, route=PUT_OVERWRITE)

    with pytest.raises(TransientError) as caught:
        await discord_client.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "join")

    assert type(caught.value) is TransientError
    assert "503" in str(caught.value)
    assert routes(sandbox.discord, PUT_OVERWRITE) == [503]  # the breaker's to count


async def test_persistent_500s_end_in_a_transient_error_within_the_call_deadline(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    sandbox.discord.inject("5xx", status=500, route=PUT_OVERWRITE)
    start = time.monotonic()

    with pytest.raises(TransientError):
        await discord_client.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "join")

    assert time.monotonic() - start < 6.0  # not discord.py's 25 s of sleeps


async def test_a_short_429_is_waited_out_inside_the_call(discord_client: DiscordAdapter,
                                                         sandbox: Sandbox) -> None:
    sandbox.discord.inject("429", count=1, retry_after=1.0, route=PUT_OVERWRITE)  # 10 ms

    await discord_client.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "join")

    assert routes(sandbox.discord, PUT_OVERWRITE) == [429, 204]


async def test_a_long_429_becomes_rate_limited_with_the_servers_retry_after(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    sandbox.discord.inject("429", count=1, retry_after=500.0, route=PUT_OVERWRITE)  # 5 s > 0.3 s

    with pytest.raises(RateLimitedError) as caught:
        await discord_client.set_member_overwrite(TEXT, ALICE, VIEW, 0, INTER, "join")

    assert caught.value.retry_after == pytest.approx(5.0)
    assert not caught.value.is_global
    assert routes(sandbox.discord, PUT_OVERWRITE) == [429]


async def test_the_invalid_request_guard_stops_calling_at_its_budget(
        make_discord: MakeDiscord, sandbox: Sandbox) -> None:
    adapter = await make_discord(ClientLimits(discord_invalid_request_budget=3))
    await adapter.channel_overwrites(TEXT, INTER)
    hidden = "870000000000000042"  # a channel the bot may not see: 403 Missing Access
    sandbox.discord.add_channel(hidden, GUILD, "hidden", type=0, bot_can_view=False)
    for _ in range(3):
        with pytest.raises(NeedsAttentionError):
            await adapter.channel_overwrites(hidden, INTER)
    sent = len(sandbox.discord.request_log)

    with pytest.raises(RateLimitedError) as caught:
        await adapter.channel_overwrites(TEXT, INTER)

    assert "invalid" in str(caught.value)
    assert "budget of 3" in str(caught.value)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    assert len(sandbox.discord.request_log) == sent
    assert adapter.status().invalid_requests == 3


async def test_a_failed_login_is_retried_cleanly_on_the_next_call(
        discord_client: DiscordAdapter, sandbox: Sandbox) -> None:
    sandbox.discord.inject("revoked_token", count=1)
    with pytest.raises(CredentialsRejectedError):
        await discord_client.channel_overwrites(TEXT, INTER)
    assert (await discord_client.probe()).verdict is Verdict.OK

    assert await discord_client.channel_overwrites(TEXT, INTER) == {}
    # the failed login, the probe, then a clean login
    assert routes(sandbox.discord, "GET /users/@me") == [401, 200, 200]
