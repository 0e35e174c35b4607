"""With SENTRY_DSN set, a daemon whose syncs fail reports to Sentry, and no configured
secret (bot token, Google private key or refresh token, admin token, DSN) leaves the
process: not in the bytes Sentry receives, not in the log stream, not in `status --json`.

Sentry here is a loopback HTTP server that records every request it receives."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from core.clients.google_credentials import file_secrets
from core.db.migrate import upgrade
from core.db.models import Group, Meeting, User
from core.db.session import create_engine, create_session_factory
from core.group_joining import join_group
from core.sandbox import Sandbox, start_sandbox
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for
from tests.world import GUILD

ROOT = Path(__file__).resolve().parents[2]
TEXT, ANN = "860000000000000001", "860000000000000009"
ADMIN_TOKEN = "admin-token-" + "x7Qp2vL9sK4m"


class SentryRecorder:
    """Records each request (headers and decoded body) sent to it as a Sentry DSN host."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.port = 0

    def received(self) -> bytes:
        return b"\n".join(self.requests)

    def events(self) -> list[dict[str, object]]:
        found = []
        for raw in self.requests:
            for line in raw.split(b"\n"):
                if line.startswith(b"{") and b'"exception"' in line:
                    found.append(json.loads(line))
        return found

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp undoes Content-Encoding itself ...
        if body[:2] == b"\x1f\x8b":  # ... but never leave a compressed body unread
            body = gzip.decompress(body)
        head = f"{request.method} {request.path_qs}\n" + "".join(
            f"{k}: {v}\n" for k, v in request.headers.items())
        self.requests.append(head.encode() + b"\n" + body)
        return web.json_response({"id": "0" * 32})


@asynccontextmanager
async def sentry_server() -> AsyncIterator[SentryRecorder]:
    recorder = SentryRecorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield recorder
    finally:
        await runner.cleanup()


async def seed(url: str, sandbox: Sandbox) -> tuple[int, int]:
    sandbox.discord.add_guild(GUILD, bot_role_position=50)
    sandbox.discord.add_channel(TEXT, GUILD, "cohort", type=0)
    sandbox.discord.add_user(ANN, "ann")
    sandbox.discord.add_member(GUILD, ANN)
    sandbox.calendar.add_calendar("cohort@group.calendar.google.com")
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            group = Group(name="Cohort", discord_guild_id=GUILD, discord_text_channel_id=TEXT,
                          calendar_id="cohort@group.calendar.google.com")
            user = User(email="ann@example.org", discord_user_id=ANN, display_name="Ann")
            session.add_all([group, user])
            await session.flush()
            session.add(Meeting(group_id=group.id, sequence=1, duration_minutes=60,
                                starts_at=datetime.now(UTC) + timedelta(days=3)))
            return user.id, group.id
    finally:
        await engine.dispose()


async def join(url: str, user_id: int, group_id: int) -> None:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await join_group(session, user_id, group_id)
    finally:
        await engine.dispose()



def leaks(haystack: bytes | str, secrets: list[str]) -> list[str]:
    text = haystack.decode(errors="replace") if isinstance(haystack, bytes) else haystack
    found = []
    for secret in secrets:
        forms = {secret, json.dumps(secret)[1:-1], *[
            line for line in secret.splitlines() if len(line) >= 16]}
        if any(form in text for form in forms):
            found.append(secret[:6] + "…")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("credentials", ["service_account", "authorized_user"])
async def test_failing_syncs_reach_sentry_without_any_secret(
    tmp_path: Path, credentials: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gs.db'}"
    await asyncio.to_thread(upgrade, url)
    async with start_sandbox(time_scale=1.0) as sandbox, sentry_server() as sentry:
        user_id, group_id = await seed(url, sandbox)
        if credentials == "service_account":
            key = sandbox.write_service_account_file(tmp_path / "google.json")
            google = {"GOOGLE_IMPERSONATE_SUBJECT": sandbox.impersonate_subject}
        else:
            key = sandbox.write_authorized_user_file(tmp_path / "google.json")
            google = {}
        dsn = f"http://5f0c1e2d3b4a49c8a7e6d5c4b3a2f1e0@127.0.0.1:{sentry.port}/42"
        secrets = [sandbox.discord_bot_token, ADMIN_TOKEN, dsn, *file_secrets(key)]
        assert len(secrets) >= 4
        env = {
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("DISCORD_", "GOOGLE_", "SENTRY_", "ADMIN_"))},
            "DATABASE_URL": url, "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG",
            "DISCORD_BOT_TOKEN": sandbox.discord_bot_token,
            "DISCORD_API_BASE_URL": sandbox.discord_base_url,
            "GOOGLE_CREDENTIALS_FILE": str(key),
            "GOOGLE_CALENDAR_ENDPOINT": sandbox.calendar_endpoint, **google,
            "ADMIN_TOKEN": ADMIN_TOKEN, "ADMIN_PORT": "0", "SENTRY_DSN": dsn,
            "TIME_SCALE": "0.01", "OUTBOX_POLL_SECONDS": "0.1",
        }
        log = tmp_path / "daemon.log"
        daemon = spawn_run(env, log)
        try:
            # The credentials are revoked once the daemon runs (at start it would refuse
            # them, exit 2), then a join makes both syncs meet the refusal.
            await wait_for(lambda: '"daemon_started"' in log.read_text(), timeout=60,
                           message="the daemon to start")
            if credentials == "service_account":
                sandbox.calendar.inject("revoked_token", route="POST /token")
            else:
                sandbox.calendar.revoke_refresh_tokens()
            sandbox.discord.inject("revoked_token")  # the token is in discord.py's login frame
            await join(url, user_id, group_id)
            await wait_for(lambda: len(sentry.events()) >= 2, timeout=60,
                           message="Sentry to hear of the discord and calendar failures")
        finally:
            daemon.send_signal(signal.SIGTERM)
            await asyncio.to_thread(daemon.wait, 15)
        status = await asyncio.to_thread(
            subprocess.run, [sys.executable, "main.py", "status", "--json"], cwd=ROOT,
            env=env, capture_output=True, text=True, timeout=60)

    events = sentry.events()
    kinds = {e["tags"]["sync_type"] for e in events}  # type: ignore[index]
    assert kinds >= {"discord", "calendar"}
    assert leaks(sentry.received(), secrets) == []
    assert leaks(log.read_text(), secrets) == []
    assert status.returncode == 0, status.stderr
    assert leaks(status.stdout + status.stderr, secrets) == []
    assert "needs_attention" in status.stdout
