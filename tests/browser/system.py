"""A real daemon (``python main.py run`` in a subprocess) against the sandbox, for the
dashboard's browser tests.

The sandbox runs on an event loop in a thread of the test process, so the test can
inject faults and read what the fakes hold while Selenium (which blocks) drives the page;
every call into the sandbox or the database runs on that loop (``System.run``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import AsyncExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from core.config import load_settings
from core.db.migrate import upgrade
from core.db.models import Group
from core.db.session import SessionFactory, create_engine, create_session_factory
from core.sandbox import Sandbox, start_sandbox
from tests.engine.daemon_process import Daemon
from tests.waiting import wait_until
from tests.world import GUILD, World

T = TypeVar("T")
ADMIN_TOKEN = "dashboard-test-admin-token-9f8e7d6c5b4a"
# Real seconds matter on a page read by a person (and a test): delays are scaled less
# than elsewhere so backoff countdowns and rate-limit banners stay visible.
SCALE = 0.1


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Awaitable[T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_wrap(coroutine), self.loop)
        return future.result(timeout)

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def invoke() -> T:
            return function(*args, **kwargs)

        return self.run(invoke())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _wrap(coroutine: Awaitable[T]) -> T:
    return await coroutine


@dataclass
class System:
    loop: LoopThread
    world: World
    sandbox: Sandbox
    daemon: Daemon
    sessions: SessionFactory
    _admin_url: str | None = None

    @property
    def admin_url(self) -> str:
        """Where the daemon's admin API listens (waits for its log line the first time)."""
        if self._admin_url is None:
            self._admin_url = _admin_url(self.daemon)
        return self._admin_url

    def run(self, coroutine: Awaitable[T], timeout: float = 60) -> T:
        return self.loop.run(coroutine, timeout)

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.loop.call(function, *args, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The admin API as a well-behaved script uses it: bearer token, its own rate-limit
        bucket, waiting out a 429's Retry-After."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kwargs.pop("headers", {})}
        deadline = time.monotonic() + 60
        while True:
            response = httpx.request(method, self.admin_url + path, headers=headers,
                                     timeout=15, **kwargs)
            if response.status_code != 429 or time.monotonic() > deadline:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))

    def key(self, sync_type: str, group_id: int) -> dict[str, Any]:
        response = self.api("GET", f"/api/keys/{sync_type}/{group_id}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


@dataclass
class Services:
    """The sandbox and what every test's daemon shares: started once per test session
    (generating the service account's RSA key alone takes seconds)."""

    loop: LoopThread
    sandbox: Sandbox
    credentials_file: Path
    template_db: Path

    def reset(self) -> None:
        self.loop.call(self.sandbox.discord.clear_faults)
        self.loop.call(self.sandbox.calendar.clear_faults)


@contextmanager
def started_services(folder: Path) -> Iterator[Services]:
    loop = LoopThread()
    stack = AsyncExitStack()
    try:
        template = folder / "template.db"
        upgrade(f"sqlite+aiosqlite:///{template}")
        sandbox = loop.run(stack.enter_async_context(start_sandbox(time_scale=SCALE)))
        loop.call(sandbox.discord.add_guild, GUILD, bot_role_position=50)
        credentials = loop.call(sandbox.write_service_account_file, folder / "sa.json")
        yield Services(loop, sandbox, credentials, template)
    finally:
        loop.run(stack.aclose())
        loop.close()


@contextmanager
def running_system(services: Services, tmp_path: Path, **env: str) -> Iterator[System]:
    """A fresh database and a daemon (its admin API on a free port) against the sandbox."""
    loop, sandbox = services.loop, services.sandbox
    database = tmp_path / "dashboard.db"
    shutil.copyfile(services.template_db, database)
    database_url = f"sqlite+aiosqlite:///{database}"
    stack = AsyncExitStack()
    daemon: Daemon | None = None
    try:
        engine = create_engine(database_url)
        stack.push_async_callback(engine.dispose)
        sessions = create_session_factory(engine)
        settings = load_settings(
            database_url=database_url, discord_bot_token=sandbox.discord_bot_token,
            discord_api_base_url=sandbox.discord_base_url,
            google_credentials_file=services.credentials_file,
            google_impersonate_subject=sandbox.impersonate_subject,
            google_calendar_endpoint=sandbox.calendar_endpoint, time_scale=SCALE,
        )
        world = World(sandbox, settings, sessions, {})
        daemon_env = {
            "SYNCER_FACTORY": "core.syncers.registry:build_syncers",
            "ENABLED_SERVICES": "discord,calendar",
            "DISCORD_BOT_TOKEN": sandbox.discord_bot_token,
            "DISCORD_API_BASE_URL": sandbox.discord_base_url,
            "GOOGLE_CREDENTIALS_FILE": str(services.credentials_file),
            "GOOGLE_IMPERSONATE_SUBJECT": sandbox.impersonate_subject,
            "GOOGLE_CALENDAR_ENDPOINT": sandbox.calendar_endpoint,
            "TIME_SCALE": str(SCALE),
            "ADMIN_PORT": "0",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "ADMIN_MIDDLEWARE": "core.sandbox.admin_faults:AdminFaultInjection",
            "CALENDAR_CHANGES_SECONDS": "100000",
            **env,
        }
        daemon = Daemon(database_url, tmp_path / "fake", tmp_path / "daemon.log", **daemon_env)
        yield System(loop, world, sandbox, daemon, sessions)
    finally:
        if daemon is not None:
            with suppress(Exception):
                daemon.terminate()
            daemon.close()
        loop.run(stack.aclose())
        services.reset()


def _admin_url(daemon: Daemon, timeout: float = 60) -> str:
    def listening() -> str | None:
        for event in daemon.events("admin_api_listening"):
            return str(event["url"])
        if daemon.process.poll() is not None:
            pytest.fail(f"the daemon exited before its admin API started:\n{output()}")
        return None

    def output() -> str:
        return daemon.output()[-4000:]

    return wait_until(listening, timeout, message="the daemon's admin API",
                      evidence=lambda: f":\n{output()}")


def log_lines(daemon: Daemon) -> list[dict[str, Any]]:
    return [json.loads(line) for line in daemon.output().splitlines() if line.startswith("{")]


def add_member_groups(system: System, count: int, *, blocked: int = 0) -> list[Group]:
    """``count`` groups with one member each; the bot cannot see the text channel of the
    first ``blocked`` ones, so their Discord sync fails with Discord's "Missing Access"
    (403) and waits for an operator."""

    async def build() -> list[Group]:
        groups = []
        for n in range(count):
            group = await system.world.add_group(meetings=1)
            if n < blocked:
                block_channel(system.sandbox, group, blocked=True)
            user = await system.world.add_user()
            await system.world.join(user, group)
            groups.append(group)
        return groups

    return system.run(build())


def block_channel(sandbox: Sandbox, group: Group, *, blocked: bool) -> None:
    """Run on the sandbox's loop: the bot loses (or regains) sight of the text channel."""
    channel = group.discord_text_channel_id
    assert channel is not None
    assert group.discord_guild_id is not None
    sandbox.discord.delete_channel(channel)
    sandbox.discord.add_channel(channel, group.discord_guild_id, f"{group.name} text",
                                type=0, bot_can_view=not blocked)
