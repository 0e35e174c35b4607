"""open_clients: credentials checked up front, adapters closed with the stack."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from discord.http import Route

from core.clients.factory import open_clients
from core.clock import SystemClock
from core.config import Settings
from core.errors import ConfigError
from core.lanes import Lane
from core.sandbox import Sandbox
from tests.clients.conftest import CALENDAR, SCALE, TEXT


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"enabled_services": "discord"}, "DISCORD_BOT_TOKEN"),
        ({"enabled_services": "calendar"}, "GOOGLE_CREDENTIALS_FILE"),
        ({}, "DISCORD_BOT_TOKEN and GOOGLE_CREDENTIALS_FILE"),
    ],
)
async def test_an_enabled_service_without_its_credential_is_a_config_error(
        values: dict[str, Any], named: str) -> None:
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError) as caught:
            await open_clients(settings(**values), stack, SystemClock(), SCALE)

    assert caught.value.variable == named


@pytest.mark.parametrize("content", [None, "{not json", '{"type": "service_account"}'])
async def test_an_unreadable_key_file_is_a_config_error_without_showing_it(
        tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)

    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError) as caught:  # refused at start (exit 2), not later
            await open_clients(
                settings(enabled_services="calendar", google_credentials_file=path,
                         google_impersonate_subject="organizer@example.org"),
                stack, SystemClock(), SCALE)

    assert "GOOGLE_CREDENTIALS_FILE" in str(caught.value)
    assert "service_account" not in str(caught.value)


async def test_a_disabled_service_gets_no_client(sandbox: Sandbox) -> None:
    config = settings(enabled_services="discord", discord_bot_token=sandbox.discord_bot_token,
                      discord_api_base_url=sandbox.discord_base_url)

    async with AsyncExitStack() as stack:
        clients = await open_clients(config, stack, SystemClock(), SCALE)

        assert clients.calendar is None
        assert [s.service for s in clients.statuses()] == ["discord"]
    assert sandbox.discord.request_log == []  # nothing connects until the first call


async def test_both_clients_work_and_close_with_the_stack(sandbox: Sandbox,
                                                          key_file: Path) -> None:
    config = settings(
        discord_bot_token=sandbox.discord_bot_token, discord_api_base_url=sandbox.discord_base_url,
        google_credentials_file=key_file, google_calendar_endpoint=sandbox.calendar_endpoint,
        google_impersonate_subject=sandbox.impersonate_subject)
    base_before = Route.BASE

    async with AsyncExitStack() as stack:
        clients = await open_clients(config, stack, SystemClock(), SCALE)
        assert clients.discord is not None
        assert clients.calendar is not None
        assert await clients.discord.channel_overwrites(TEXT, Lane.INTERACTIVE) == {}
        assert await clients.calendar.list_events(CALENDAR, ("k", "v"), Lane.BACKGROUND) == []
        assert [s.breaker_state for s in clients.statuses()] == ["closed", "closed"]

    assert base_before == Route.BASE
