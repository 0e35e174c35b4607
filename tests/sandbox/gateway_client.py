"""discord.py's real gateway client, pointed at a sandbox per client.

discord.py 2.7's ``Client.connect`` opens its first socket (and every one after an
INVALID_SESSION) at the class-wide ``DiscordWebSocket.DEFAULT_GATEWAY``; rewriting that
attribute would move every client of the process. Like ``use_base_url`` for REST, the
seam here is one client's own ``http.ws_connect``: a connect to the default gateway goes
to the URL ``GET /gateway/bot`` gave instead (resumes already use READY's
``resume_gateway_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket

from core.clients.discord_adapter import use_base_url
from core.sandbox import Sandbox
from tests.waiting import wait_for


class SandboxClient(discord.Client):
    """``Intents.none()`` plus GUILDS; records identifies instead of waiting 5 s before a
    re-identify (discord.py's default hook), and every raw gateway event name."""

    def __init__(self, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        options.setdefault("intents", intents)
        options.setdefault("guild_ready_timeout", 0.05)
        super().__init__(enable_debug_events=True, **options)
        self.identifies: list[bool] = []  # ``initial`` of each IDENTIFY
        self.events: list[str] = []
        self.connect_task: asyncio.Task[None] | None = None

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        self.identifies.append(initial)

    async def on_socket_event_type(self, event: str) -> None:
        self.events.append(event)


def use_gateway_url(client: discord.Client, url: str) -> None:
    """Send this client's connects to the default gateway to ``url`` instead."""
    http = client.http
    connect = http.ws_connect
    default_host = DiscordWebSocket.DEFAULT_GATEWAY.host

    async def ws_connect(target: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
        asked = yarl.URL(target)
        if asked.host == default_host:
            asked = yarl.URL(url).with_query(asked.query)
        return await connect(str(asked), compress=compress)

    http.ws_connect = ws_connect  # type: ignore[method-assign]


@asynccontextmanager
async def gateway_client(sandbox: Sandbox, *, wait_ready: bool = True,
                         token: str | None = None,
                         **options: Any) -> AsyncIterator[SandboxClient]:
    """A logged-in client whose ``connect`` runs as a task (READY awaited by default)."""
    client = SandboxClient(**options)
    use_base_url(client, sandbox.discord_base_url)
    await client.login(token or sandbox.discord_bot_token)
    _shards, url, _limit = await client.http.get_bot_gateway()
    use_gateway_url(client, url)
    task = client.connect_task = asyncio.create_task(client.connect())
    try:
        if wait_ready:
            await wait_for(lambda: client.is_ready() or task.done(), timeout=10,
                           message="the client's READY")
            if task.done():
                task.result()  # raise what ended it
        yield client
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)
