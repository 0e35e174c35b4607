"""Fixtures: a sandbox per test, discord.py pointed at it, a Calendar client built on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import discord
import discord.http
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from core.sandbox import Sandbox, SandboxLimits, start_sandbox

TIME_SCALE = 0.01
GUILD, BOT_ROLE_POSITION = 111111111111111111, 10
LOW_ROLE, HIGH_ROLE = 222222222222222222, 222222222222222223
TEXT, VOICE, HIDDEN = 333333333333333331, 333333333333333332, 333333333333333333
ALICE, BOB, NO_DMS = 444444444444444441, 444444444444444442, 444444444444444443
CALENDAR = "cohort@group.calendar.google.com"


@dataclass(frozen=True)
class Seeded:
    guild: int = GUILD
    low_role: int = LOW_ROLE
    high_role: int = HIGH_ROLE
    text: int = TEXT
    voice: int = VOICE
    hidden: int = HIDDEN
    alice: int = ALICE
    bob: int = BOB
    no_dms: int = NO_DMS
    calendar: str = CALENDAR


def seed(sb: Sandbox) -> Seeded:
    d = sb.discord
    d.add_guild(GUILD, bot_role_position=BOT_ROLE_POSITION)
    d.add_role(GUILD, LOW_ROLE, BOT_ROLE_POSITION - 1)
    d.add_role(GUILD, HIGH_ROLE, BOT_ROLE_POSITION + 1)
    d.add_channel(TEXT, GUILD, "group-1", type=0)
    d.add_channel(VOICE, GUILD, "group-1-voice", type=2)
    d.add_channel(HIDDEN, GUILD, "staff", type=0, bot_can_view=False)
    d.add_user(ALICE, "alice")
    d.add_user(BOB, "bob")
    d.add_user(NO_DMS, "private", accepts_dms=False)
    for user in (ALICE, NO_DMS):
        d.add_member(GUILD, user)
    sb.calendar.add_calendar(CALENDAR)
    return Seeded()


@asynccontextmanager
async def seeded_sandbox(limits: SandboxLimits | None = None,
                         time_scale: float = TIME_SCALE) -> AsyncIterator[Sandbox]:
    async with start_sandbox(time_scale=time_scale, limits=limits) as sb:
        seed(sb)
        yield sb


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with seeded_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def ids() -> Seeded:
    return Seeded()


@pytest.fixture
def point_discord(monkeypatch: pytest.MonkeyPatch) -> Callable[[Sandbox], None]:
    """Point discord.py's class-level Route.BASE at a sandbox; restored after the test."""

    def point(sandbox: Sandbox) -> None:
        monkeypatch.setattr(discord.http.Route, "BASE", sandbox.discord_base_url)

    return point


@asynccontextmanager
async def bot_client(sandbox: Sandbox, **kwargs: Any) -> AsyncIterator[discord.Client]:
    client = discord.Client(intents=discord.Intents.none(), **kwargs)
    await client.login(sandbox.discord_bot_token)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def bot(sb: Sandbox, point_discord: Callable[[Sandbox], None]
              ) -> AsyncIterator[discord.Client]:
    point_discord(sb)
    async with bot_client(sb) as client:
        yield client


def calendar_service(sandbox: Sandbox, token: str | None = None) -> Any:
    credentials = Credentials(token=token or sandbox.calendar_token)
    return build("calendar", "v3", credentials=credentials, static_discovery=True,
                 client_options={"api_endpoint": sandbox.calendar_endpoint})


@pytest.fixture
def calendar(sb: Sandbox) -> Iterator[Any]:
    service = calendar_service(sb)
    yield service
    service.close()  # httplib2 keeps sockets open otherwise (ResourceWarning)


async def run(request: Any, num_retries: int = 0, sleeps: list[float] | None = None) -> Any:
    """Execute a googleapiclient request in a worker thread; retry sleeps are recorded."""
    if sleeps is not None:
        request._sleep = sleeps.append
    return await asyncio.to_thread(request.execute, num_retries=num_retries)


def event_body(event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": "Week 1",
        "start": {"dateTime": "2026-06-01T17:00:00Z"},
        "end": {"dateTime": "2026-06-01T18:00:00Z"},
        **fields,
    }
    if event_id is not None:
        body["id"] = event_id
    return body
