"""Posted messages stay readable through the real endpoint; the nonce window is scaled."""

from __future__ import annotations

import asyncio

import discord
import pytest

from core.sandbox import Sandbox
from tests.sandbox.conftest import TIME_SCALE, Seeded


async def test_history_lists_the_bots_messages_newest_first_without_nonces(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    channel = await bot.fetch_channel(ids.text)
    assert isinstance(channel, discord.TextChannel)
    for n in range(3):
        await channel.send(f"message {n}", nonce=f"n{n}")

    listed = await bot.http.logs_from(ids.text, limit=2)

    assert [m["content"] for m in listed] == ["message 2", "message 1"]
    assert all(m["author"]["id"] == sb.discord.bot_user_id for m in listed)
    assert all("nonce" not in m for m in listed)


async def test_history_after_a_snowflake_returns_the_oldest_messages_after_it(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    channel = await bot.fetch_channel(ids.text)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("before")
    for n in range(4):
        await channel.send(f"after {n}")

    listed = await bot.http.logs_from(ids.text, limit=2, after=first.id)
    history = [m.content async for m in channel.history(limit=10, after=first, oldest_first=True)]

    assert [m["content"] for m in listed] == ["after 1", "after 0"]
    assert history == ["after 0", "after 1", "after 2", "after 3"]


async def test_history_of_a_hidden_channel_is_refused(bot: discord.Client, ids: Seeded) -> None:
    with pytest.raises(discord.Forbidden) as refused:
        await bot.http.logs_from(ids.hidden, limit=10)
    assert refused.value.code == 50001


async def test_a_nonce_is_forgotten_after_the_scaled_window(
    sb: Sandbox, bot: discord.Client, ids: Seeded
) -> None:
    channel = await bot.fetch_channel(ids.text)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("Reminder", nonce="gsr1o60")
    within = await channel.send("Reminder", nonce="gsr1o60")
    # The default window is 300 s nominal: 3 s at the sandbox's time scale.
    await asyncio.sleep(sb.discord.limits.nonce_window * TIME_SCALE + 0.1)
    after = await channel.send("Reminder", nonce="gsr1o60")

    assert within.id == first.id
    assert after.id != first.id
    assert len(sb.discord.messages(ids.text)) == 2
