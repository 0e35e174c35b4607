"""Adapters against the sandbox over loopback, through the real discord.py and Google client.

Time runs at ``SCALE`` (the sandbox scales its windows, the adapters their limits), so a
nominal 30 s breaker reset takes 0.3 s here.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from discord.http import Route

from core.clients.calendar_adapter import CalendarAdapter
from core.clients.discord_adapter import DiscordAdapter
from core.clients.google_credentials import load_google_credentials
from core.clients.limits import ClientLimits
from core.clock import TimeScale
from core.sandbox import Sandbox, start_sandbox
from core.sandbox.oauth import TokenRegistry

SCALE = TimeScale(0.01)
GUILD = "100000000000000001"
ROLE = "100000000000000002"
TEXT = "100000000000000010"
VOICE = "100000000000000011"
ALICE = "100000000000000020"
BOB = "100000000000000021"
CALENDAR = "group-1@group.calendar.google.com"

MakeDiscord = Callable[..., Awaitable[DiscordAdapter]]
MakeCalendar = Callable[..., Awaitable[CalendarAdapter]]


@pytest.fixture(autouse=True)
def _route_base_restored() -> AsyncIterator[None]:
    before = Route.BASE
    yield
    assert before == Route.BASE, "an adapter left discord.http.Route.BASE patched"
    Route.BASE = before


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with start_sandbox(time_scale=SCALE.factor) as sb:
        d = sb.discord
        d.add_guild(GUILD)
        d.add_role(GUILD, ROLE, 1, name="cohort")
        d.add_channel(TEXT, GUILD, "group-1-text", type=0)
        d.add_channel(VOICE, GUILD, "group-1-voice", type=2)
        for user_id, name in ((ALICE, "alice"), (BOB, "bob")):
            d.add_user(user_id, name)
            d.add_member(GUILD, user_id)
        sb.calendar.add_calendar(CALENDAR)
        yield sb


@pytest.fixture
async def make_discord(sandbox: Sandbox) -> AsyncIterator[MakeDiscord]:
    opened: list[DiscordAdapter] = []

    async def make(limits: ClientLimits | None = None, token: str | None = None) -> DiscordAdapter:
        options = (limits or ClientLimits()).discord(sandbox.discord_base_url, SCALE)
        adapter = DiscordAdapter(token or sandbox.discord_bot_token, options, time.monotonic)
        await adapter.start()
        opened.append(adapter)
        return adapter

    yield make
    for adapter in reversed(opened):
        await adapter.close()


@pytest.fixture
async def discord_client(make_discord: MakeDiscord) -> DiscordAdapter:
    return await make_discord()


@pytest.fixture(scope="session")
def service_account_info(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One generated key for the session (RSA generation takes about a second)."""
    path = tmp_path_factory.mktemp("key") / "service-account.json"
    TokenRegistry().write_service_account_file(path, "http://127.0.0.1:1/token")
    info: dict[str, str] = json.loads(path.read_text())
    return info


@pytest.fixture
def key_file(sandbox: Sandbox, service_account_info: dict[str, str], tmp_path: Path) -> Path:
    """The session's key, pointed at this sandbox's token endpoint."""
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({**service_account_info, "token_uri": sandbox.token_uri}))
    return path


@pytest.fixture
async def make_calendar(sandbox: Sandbox, key_file: Path) -> AsyncIterator[MakeCalendar]:
    opened: list[CalendarAdapter] = []

    async def make(limits: ClientLimits | None = None) -> CalendarAdapter:
        options = (limits or ClientLimits()).calendar(sandbox.calendar_endpoint, SCALE)
        credentials = load_google_credentials(key_file, sandbox.impersonate_subject)
        adapter = CalendarAdapter(credentials, options, time.monotonic)
        await adapter.start()
        opened.append(adapter)
        return adapter

    yield make
    for adapter in reversed(opened):
        await adapter.close()


@pytest.fixture
async def calendar_client(make_calendar: MakeCalendar) -> CalendarAdapter:
    return await make_calendar()


def routes(sandbox_service: object, route: str) -> list[int]:
    """Statuses of the requests the fake answered on ``route`` ("METHOD /template")."""
    return [r.status for r in sandbox_service.request_log if r.route == route]  # type: ignore[attr-defined]
