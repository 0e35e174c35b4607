"""One small world for tests of real daemon processes against the sandbox: a group with
a text channel and a calendar (one meeting next week) that Ann joins, the environment a
daemon runs with, and reads of what it did (keys, CLI, calls on a target)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import select

from core.db.models import Group, Meeting, SyncState, User
from core.db.session import create_engine, create_session_factory
from core.group_joining import join_group
from core.sandbox import Sandbox
from core.sandbox.reqlog import RequestRecord
from tests.world import GUILD

ROOT = Path(__file__).resolve().parents[2]
TEXT, ANN, BOB = "871000000000000001", "871000000000000008", "871000000000000009"
CALENDAR = "cohort-1@group.calendar.google.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(database_url: str, scale: float = 0.01, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISCORD_", "GOOGLE_", "SENTRY_", "ADMIN_"))}
    env.update({"DATABASE_URL": database_url, "LOG_FORMAT": "json", "ADMIN_PORT": "0",
                "TIME_SCALE": str(scale), "OUTBOX_POLL_SECONDS": "0.1",
                "SHUTDOWN_TIMEOUT_SECONDS": "2", "PYTHONPATH": str(ROOT), **extra})
    return env


def discord_env(database_url: str, sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return env_for(database_url, ENABLED_SERVICES="discord", **extra,
                   DISCORD_BOT_TOKEN=sandbox.discord_bot_token,
                   DISCORD_API_BASE_URL=sandbox.discord_base_url)


def calendar_env(database_url: str, sandbox: Sandbox, tmp: Path, **extra: str
                 ) -> dict[str, str]:
    key = sandbox.write_service_account_file(tmp / "sa.json")
    return env_for(database_url, ENABLED_SERVICES="calendar", **extra,
                   GOOGLE_CREDENTIALS_FILE=str(key),
                   GOOGLE_IMPERSONATE_SUBJECT=sandbox.impersonate_subject,
                   GOOGLE_CALENDAR_ENDPOINT=sandbox.calendar_endpoint)


async def seed(database_url: str, sandbox: Sandbox) -> int:
    """A group with a text channel and a calendar (one meeting next week); Ann joins."""
    sandbox.discord.add_guild(GUILD, bot_role_position=50)
    sandbox.discord.add_channel(TEXT, GUILD, "cohort", type=0)
    for user, name in ((ANN, "ann"), (BOB, "bob")):
        sandbox.discord.add_user(user, name)
        sandbox.discord.add_member(GUILD, user)
    sandbox.calendar.add_calendar(CALENDAR)
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            group = Group(name="Cohort", discord_guild_id=GUILD, discord_text_channel_id=TEXT,
                          calendar_id=CALENDAR)
            ann = User(email="ann@example.org", discord_user_id=ANN, display_name="Ann")
            session.add_all([group, ann])
            await session.flush()
            session.add(Meeting(group_id=group.id, sequence=1, duration_minutes=60,
                                starts_at=datetime.now(UTC).replace(microsecond=0)
                                + timedelta(days=7)))
            await join_group(session, ann.id, group.id)
            return group.id
    finally:
        await engine.dispose()


async def bob_joins(database_url: str, group_id: int) -> None:
    """A membership change: the group's keys are owed again and run at once."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            bob = User(email="bob@example.org", discord_user_id=BOB, display_name="Bob")
            session.add(bob)
            await session.flush()
            await join_group(session, bob.id, group_id)
    finally:
        await engine.dispose()


async def rows(database_url: str) -> list[SyncState]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list((await session.scalars(select(SyncState))).all())
    finally:
        await engine.dispose()


async def key(database_url: str, sync_type: str) -> SyncState | None:
    return next((r for r in await rows(database_url) if r.sync_type == sync_type), None)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def calls_on(records: list[RequestRecord], target: str, since: float) -> list[float]:
    names = {target, quote(target, safe="")}
    return sorted(r.time for r in records
                  if r.time >= since and any(n in r.path for n in names))
