"""Runs the fakes: in-process (``start_sandbox``) or as its own process (``serve_forever``)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from core.sandbox.calendar_fake import BATCH_PATH, TOKEN_PATH, CalendarFake
from core.sandbox.clock import Clock
from core.sandbox.control import add_control_routes
from core.sandbox.discord_fake import API_PREFIX, DiscordFake
from core.sandbox.listener import Listener
from core.sandbox.oauth import DEFAULT_SUBJECT
from core.sandbox.options import SandboxLimits


class Sandbox:
    """Both fakes, their listeners and the control port."""

    def __init__(
        self,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        discord_port: int = 0,
        calendar_port: int = 0,
        control_port: int | None = 0,
        limits: SandboxLimits | None = None,
    ) -> None:
        limits = limits or SandboxLimits()
        self.clock = Clock(time_scale)
        self.host = host
        self.discord = DiscordFake(self.clock, limits.discord, seed=limits.seed)
        self.calendar = CalendarFake(self.clock, limits.calendar, seed=limits.seed)
        self._discord_listener = Listener(self._app(self.discord.app()), host, discord_port)
        self._calendar_listener = Listener(self._app(self.calendar.app()), host, calendar_port)
        self._control_listener = (
            None if control_port is None else Listener(self._app(web.Application()), host,
                                                       control_port))
        self.discord.listener = self._discord_listener
        self.calendar.listener = self._calendar_listener

    def _app(self, app: web.Application) -> web.Application:
        add_control_routes(app, {"discord": self.discord, "calendar": self.calendar}, self.urls)
        return app

    async def start(self) -> None:
        await self._discord_listener.start()
        await self._calendar_listener.start()
        if self._control_listener is not None:
            await self._control_listener.start()

    async def stop(self) -> None:
        listeners = [self._discord_listener, self._calendar_listener, self._control_listener]
        for listener in listeners:
            if listener is not None:
                await listener.stop()

    # ---- URLs and credentials ------------------------------------------------------------
    def _base(self, listener: Listener) -> str:
        return f"http://{self.host}:{listener.port}"

    @property
    def discord_base_url(self) -> str:
        return self._base(self._discord_listener) + API_PREFIX

    @property
    def calendar_endpoint(self) -> str:
        return self._base(self._calendar_listener) + "/calendar/v3/"

    @property
    def calendar_batch_url(self) -> str:
        return self._base(self._calendar_listener) + BATCH_PATH

    @property
    def token_uri(self) -> str:
        return self._base(self._calendar_listener) + TOKEN_PATH

    @property
    def control_url(self) -> str | None:
        if self._control_listener is None:
            return None
        return self._base(self._control_listener) + "/_control"

    @property
    def discord_bot_token(self) -> str:
        return self.discord.bot_token

    @property
    def calendar_token(self) -> str:
        """A ready bearer token (no service-account file needed)."""
        return self.calendar.static_token

    def write_service_account_file(self, path: str | Path) -> Path:
        """A key file for this sandbox's token endpoint. Use it with ``impersonate_subject``
        (GOOGLE_IMPERSONATE_SUBJECT): without it Google refuses to invite attendees."""
        return self.calendar.tokens.write_service_account_file(path, self.token_uri)

    def write_authorized_user_file(self, path: str | Path, user: str = DEFAULT_SUBJECT) -> Path:
        """An authorized-user OAuth file whose refresh token this sandbox accepts."""
        return self.calendar.tokens.write_authorized_user_file(path, self.token_uri, user)

    @property
    def impersonate_subject(self) -> str:
        """The Workspace user the sandbox's service account may act for."""
        return DEFAULT_SUBJECT

    def urls(self) -> dict[str, Any]:
        return {
            "discord_base_url": self.discord_base_url,
            "calendar_endpoint": self.calendar_endpoint,
            "calendar_batch_url": self.calendar_batch_url,
            "token_uri": self.token_uri,
            "control_url": self.control_url,
            "discord_control_url": self._base(self._discord_listener) + "/_control",
            "calendar_control_url": self._base(self._calendar_listener) + "/_control",
            "discord_bot_token": self.discord_bot_token,
            "calendar_token": self.calendar_token,
            "google_impersonate_subject": self.impersonate_subject,
            "time_scale": self.clock.time_scale,
        }


@asynccontextmanager
async def start_sandbox(
    time_scale: float = 1.0,
    host: str = "127.0.0.1",
    discord_port: int = 0,
    calendar_port: int = 0,
    *,
    control_port: int | None = 0,
    limits: SandboxLimits | None = None,
) -> AsyncIterator[Sandbox]:
    """Start both fakes on loopback (free ports by default); stop them on exit."""
    sandbox = Sandbox(time_scale, host, discord_port, calendar_port, control_port, limits)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


def seed_demo_state(sandbox: Sandbox) -> dict[str, Any]:
    """A small guild, users and a calendar for ``main.py demo`` and manual poking."""
    d = sandbox.discord
    guild, bot_role_position = "900000000000000001", 10
    d.add_guild(guild, name="groupsync demo", bot_role_position=bot_role_position)
    d.add_role(guild, "900000000000000002", 1, name="cohort")
    for offset, name in enumerate(["group-1-text", "group-1-voice"]):
        d.add_channel(f"90000000000000001{offset}", guild, name, type=2 * offset)
    users = {f"9000000000000002{i}": f"demo-user-{i}" for i in range(3)}
    for user_id, name in users.items():
        d.add_user(user_id, name)
        d.add_member(guild, user_id)
    calendar_id = "groupsync-demo@group.calendar.google.com"
    sandbox.calendar.add_calendar(calendar_id)
    return {"guild_id": guild, "role_id": "900000000000000002",
            "channel_ids": ["900000000000000010", "900000000000000011"],
            "user_ids": list(users), "calendar_id": calendar_id}


async def serve_forever(
    time_scale: float = 1.0,
    host: str = "127.0.0.1",
    discord_port: int = 0,
    calendar_port: int = 0,
    seed_demo: bool = False,
    control_port: int | None = 0,
) -> None:
    """Serve until SIGTERM/SIGINT; print one JSON line with the URLs once ready."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with start_sandbox(time_scale, host, discord_port, calendar_port,
                                 control_port=control_port) as sandbox:
            ready = sandbox.urls()
            if seed_demo:
                ready["demo"] = seed_demo_state(sandbox)
            sys.stdout.write(json.dumps(ready) + "\n")
            sys.stdout.flush()
            await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
