"""A real daemon (run_daemon with the admin face) in this event loop, its API on a free
loopback port, driven with httpx."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.admin.face import AdminFace
from core.admin.service import AdminService
from core.config import Settings
from core.daemon import run_daemon
from core.db.models import Group
from core.db.session import SessionFactory
from core.sandbox import FaultHandle, Sandbox
from tests.engine.conftest import Fakes, engine_settings, fakes  # noqa: F401 (fixture)
from tests.waiting import wait_for
from tests.world import World, sandbox_settings

TOKEN = "test-admin-token-0123456789"


@dataclass
class AdminDaemon:
    url: str
    settings: Settings
    face: AdminFace
    stop: asyncio.Event
    task: asyncio.Task[int]

    def client(self, token: str | None = TOKEN, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **kwargs)


DaemonMaker = Callable[..., Awaitable[AdminDaemon]]


@pytest.fixture
async def start_daemon(database_url: str, fakes: Fakes  # noqa: F811
                       ) -> AsyncIterator[DaemonMaker]:
    started: list[AdminDaemon] = []

    async def start(settings: Settings | None = None, **overrides: Any) -> AdminDaemon:
        if settings is None:
            values = {"admin_token": TOKEN, "enabled_services": "", **overrides}
            settings = engine_settings(database_url, **values)
        face = AdminFace(settings)
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(run_daemon(settings, stop, face=face))
        await wait_for(lambda: face.url is not None or task.done(), timeout=20,
                       message="admin API listening")
        if task.done():
            task.result()
        assert face.url is not None
        daemon = AdminDaemon(face.url, settings, face, stop, task)
        started.append(daemon)
        return daemon

    yield start
    for daemon in reversed(started):  # standbys first, so none takes over mid-teardown
        daemon.stop.set()
    for daemon in reversed(started):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(daemon.task, timeout=15)


async def active(running: AdminDaemon) -> AdminDaemon:
    """Wait until the daemon leads and its heartbeat row says so."""
    async def published() -> bool:
        async with running.client() as api:
            view = (await api.get("/api/overview")).json()
        return any(d["role"] == "active" for d in view["daemons"])

    await wait_for(published, timeout=20, interval=0.1, message="daemon active")
    return running


@pytest.fixture
async def daemon(start_daemon: DaemonMaker) -> AdminDaemon:
    return await active(await start_daemon())


@pytest.fixture
def admin_sessions(daemon: AdminDaemon) -> SessionFactory:
    assert daemon.face.service is not None
    return daemon.face.service.session_factory


def discord_of(view: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in view["services"] if s["name"] == "discord")


@dataclass
class DiscordStorm:
    """An active daemon against the sandbox whose Discord answers every call 503 (the
    breaker opens after two failures and stays open), and a group with one member owed."""

    daemon: AdminDaemon
    world: World
    group: Group
    storm: FaultHandle
    from_rows: AdminService  # what the CLI sees: the heartbeat

    async def heartbeat_says_open(self) -> bool:
        return bool(discord_of(await self.from_rows.overview())["breaker"]["state"] == "open")


@pytest.fixture
async def discord_storm(
    sandbox: Sandbox, start_daemon: DaemonMaker, session_factory: SessionFactory,
    database_url: str, tmp_path: Path,
) -> DiscordStorm:
    """(The test module brings the ``sandbox`` fixture: ``tests.e2e.conftest``.)"""
    settings = sandbox_settings(sandbox, database_url, tmp_path, admin_token=TOKEN,
                                admin_port=0, calendar_changes_seconds=1_000_000,
                                discord_gateway=False,
                                breaker_failure_threshold=2, breaker_reset_seconds=100_000)
    daemon = await active(await start_daemon(settings))
    world = World(sandbox, settings, session_factory, {})
    storm = sandbox.discord.inject("5xx", status=503)
    group = await world.add_group(meetings=0)
    await world.join(await world.add_user(), group)
    return DiscordStorm(daemon, world, group, storm, AdminService(session_factory, settings))
