"""`python main.py run` checks its settings and each enabled service's credentials before
anything starts: a refusal is exit 2 and one line naming the variable, and the admin
port was never bound; a service that does not answer at boot does not stop the daemon.
Real daemon processes against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db.models import DaemonHeartbeat, Group, User
from core.db.session import create_engine, create_session_factory
from core.group_joining import join_group
from core.sandbox import Sandbox, start_sandbox
from tests.e2e.daemon_world import free_port
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for
from tests.world import GUILD

ROOT = Path(__file__).resolve().parents[2]
TEXT, ANN = "870000000000000001", "870000000000000009"

pytestmark = pytest.mark.slow


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def base_env(database_url: str, admin_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISCORD_", "GOOGLE_", "SENTRY_", "ADMIN_"))}
    env.update({"DATABASE_URL": database_url, "LOG_FORMAT": "json", "ENABLED_SERVICES": "",
                "ADMIN_PORT": str(admin_port), "TIME_SCALE": "0.01",
                "OUTBOX_POLL_SECONDS": "0.1", "SHUTDOWN_TIMEOUT_SECONDS": "2",
                "PYTHONPATH": str(ROOT), **extra})
    return env


async def refused_run(env: dict[str, str], port: int) -> tuple[int, str, bool]:
    """Run the daemon to its end; (exit code, stderr, was the admin port ever open)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "main.py", "run", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    finished = asyncio.ensure_future(process.communicate())
    bound = False
    while not finished.done():  # probe the port for the whole attempt
        bound = bound or await asyncio.to_thread(port_open, port)
        await asyncio.wait([finished], timeout=0.05)
    _out, err = await asyncio.wait_for(finished, timeout=90)
    bound = bound or port_open(port)
    assert process.returncode is not None
    return process.returncode, err.decode(), bound


def unclaimed_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999): every other test binds
    port 0 and gets one from that range, so none of them can take this one while the
    refused daemon is watched (a free ephemeral port, probed for the whole attempt, was
    once bound by a parallel test and read as the daemon's)."""
    for _ in range(200):
        candidate = random.randint(20000, 32000)
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise AssertionError("no free port below the ephemeral range")


def the_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


Case = Callable[[Sandbox, Path], dict[str, str]]


def blank_bot_token(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    return {"ENABLED_SERVICES": "discord", "DISCORD_BOT_TOKEN": "  "}


def blank_admin_token_public(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    return {"ADMIN_HOST": "0.0.0.0", "ADMIN_TOKEN": ""}


def missing_file(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    return {"ENABLED_SERVICES": "calendar", "GOOGLE_CREDENTIALS_FILE": str(tmp / "nope.json")}


def non_json_file(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    (tmp / "key.json").write_text("not json at all")
    return {"ENABLED_SERVICES": "calendar", "GOOGLE_CREDENTIALS_FILE": str(tmp / "key.json")}


def incomplete_file(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    (tmp / "key.json").write_text(json.dumps({"type": "service_account"}))
    return {"ENABLED_SERVICES": "calendar", "GOOGLE_CREDENTIALS_FILE": str(tmp / "key.json"),
            "GOOGLE_IMPERSONATE_SUBJECT": sandbox.impersonate_subject}


def rejected_bot_token(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    return {"ENABLED_SERVICES": "discord", "DISCORD_BOT_TOKEN": "not-the-sandbox-token",
            "DISCORD_API_BASE_URL": sandbox.discord_base_url}


def revoked_google_grant(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    path = sandbox.write_authorized_user_file(tmp / "user.json")
    sandbox.calendar.revoke_refresh_tokens()
    return {"ENABLED_SERVICES": "calendar", "GOOGLE_CREDENTIALS_FILE": str(path),
            "GOOGLE_CALENDAR_ENDPOINT": sandbox.calendar_endpoint}


def unknown_key(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    from core.sandbox.rsa_key import generate_key

    path = sandbox.write_service_account_file(tmp / "sa.json")
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "private_key": generate_key(1024)[0]}))  # not issued
    return {"ENABLED_SERVICES": "calendar", "GOOGLE_CREDENTIALS_FILE": str(path),
            "GOOGLE_IMPERSONATE_SUBJECT": sandbox.impersonate_subject}


REFUSALS: list[tuple[Case, str, str]] = [
    (blank_bot_token, "DISCORD_BOT_TOKEN", "empty"),
    (blank_admin_token_public, "ADMIN_TOKEN", "empty"),
    (missing_file, "GOOGLE_CREDENTIALS_FILE", "does not exist"),
    (non_json_file, "GOOGLE_CREDENTIALS_FILE", "is not JSON"),
    (incomplete_file, "GOOGLE_CREDENTIALS_FILE", "without client_email, private_key, token_uri"),
    (rejected_bot_token, "DISCORD_BOT_TOKEN", "Discord rejected it: 401: Unauthorized"),
    (revoked_google_grant, "GOOGLE_CREDENTIALS_FILE", "Token has been expired or revoked"),
    (unknown_key, "GOOGLE_CREDENTIALS_FILE", "invalid_grant: Invalid JWT Signature."),
]


@pytest.mark.parametrize(("case", "variable", "says"), REFUSALS,
                         ids=[case.__name__ for case, _, _ in REFUSALS])
async def test_a_refused_start_is_one_line_exit_2_and_never_binds_the_admin_port(
    database_url: str, tmp_path: Path, case: Case, variable: str, says: str
) -> None:
    async with start_sandbox(time_scale=0.01) as sandbox:
        port = unclaimed_port()
        env = base_env(database_url, port, **case(sandbox, tmp_path))

        code, err, bound = await refused_run(env, port)

    line = the_line(err)
    assert code == 2, err
    assert line.startswith(f"groupsync: configuration error: {variable}")
    assert says in line
    assert not bound, "the admin port was bound before the refusal"
    assert await heartbeats(database_url) == []


async def heartbeats(database_url: str) -> list[DaemonHeartbeat]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list((await session.scalars(select(DaemonHeartbeat))).all())
    finally:
        await engine.dispose()


async def seed(database_url: str, sandbox: Sandbox) -> None:
    sandbox.discord.add_guild(GUILD, bot_role_position=50)
    sandbox.discord.add_channel(TEXT, GUILD, "cohort", type=0)
    sandbox.discord.add_user(ANN, "ann")
    sandbox.discord.add_member(GUILD, ANN)
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            group = Group(name="Cohort", discord_guild_id=GUILD, discord_text_channel_id=TEXT)
            user = User(email="ann@example.org", discord_user_id=ANN, display_name="Ann")
            session.add_all([group, user])
            await session.flush()
            await join_group(session, user.id, group.id)
    finally:
        await engine.dispose()



def events(log: Path, name: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name:
            found.append(event)
    return found


async def test_a_service_unreachable_at_start_does_not_stop_the_daemon_which_converges_later(
    database_url: str, tmp_path: Path
) -> None:
    # Given a sandbox whose ports are chosen but closed (not started yet)
    sandbox = Sandbox(time_scale=0.01, discord_port=free_port(), calendar_port=free_port())
    key = sandbox.write_service_account_file(tmp_path / "sa.json")
    await seed(database_url, sandbox)
    env = base_env(
        database_url, 0, ENABLED_SERVICES="discord,calendar",
        DISCORD_BOT_TOKEN=sandbox.discord_bot_token,
        DISCORD_API_BASE_URL=sandbox.discord_base_url, GOOGLE_CREDENTIALS_FILE=str(key),
        GOOGLE_IMPERSONATE_SUBJECT=sandbox.impersonate_subject,
        GOOGLE_CALENDAR_ENDPOINT=sandbox.calendar_endpoint)
    log = tmp_path / "daemon.log"
    daemon = spawn_run(env, log)
    try:
        # When the daemon starts while neither service answers
        await wait_for(lambda: bool(events(log, "daemon_started")) or daemon.poll() is not None,
                       timeout=60, message="the daemon to start")
        assert daemon.poll() is None, log.read_text()
        warned = events(log, "service_unreachable_at_start")
        assert sorted(str(e["service"]) for e in warned) == ["calendar", "discord"]
        # Then, once they answer, the group converges without anyone acting
        await sandbox.start()
        try:
            await wait_for(lambda: ANN in sandbox.discord.overwrites(TEXT), timeout=60,
                           message="Ann's overwrite once Discord answers")
        finally:
            await sandbox.stop()
    finally:
        daemon.send_signal(signal.SIGTERM)
        await asyncio.to_thread(daemon.wait, 15)
    assert daemon.returncode == 0, log.read_text()


async def test_a_second_daemon_on_one_sqlite_file_binds_nothing_and_leaves_no_heartbeat(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("on PostgreSQL a second daemon is a standby, not refused")
    log = tmp_path / "first.log"
    first = spawn_run(base_env(database_url, 0), log)
    try:
        await wait_for(lambda: bool(events(log, "daemon_started")), timeout=60,
                       message="the first daemon to start")
        await wait_for(lambda: _count(database_url, 1), timeout=30,
                       message="the first daemon's heartbeat")
        port = unclaimed_port()

        code, err, bound = await refused_run(base_env(database_url, port), port)

        assert code == 1, err
        assert "another groupsync daemon" in err
        assert not bound, "the refused daemon bound its admin port"
        rows = await heartbeats(database_url)
        assert [r.pid for r in rows] == [first.pid]
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.to_thread(first.wait, 15)
    assert await heartbeats(database_url) == []  # a daemon that stops takes its row along


async def _count(database_url: str, n: int) -> bool:
    return len(await heartbeats(database_url)) == n


async def test_dead_heartbeats_are_not_counted_as_standbys(
    database_url: str, tmp_path: Path
) -> None:
    from core.admin.service import AdminService
    from core.config import load_settings

    # Given one live standby and five rows of daemons that died minutes ago
    now = datetime.now(UTC)
    engine = create_engine(database_url)
    try:
        sessions = create_session_factory(engine)
        async with sessions() as session, session.begin():
            session.add(DaemonHeartbeat(id="live", host="h", pid=1, role="standby",
                                        since=now, last_heartbeat=now, clients=[]))
            for i in range(5):
                old = now - timedelta(minutes=7)
                session.add(DaemonHeartbeat(id=f"dead-{i}", host="h", pid=10 + i,
                                            role="standby", since=old, last_heartbeat=old,
                                            clients=[]))
        service = AdminService(sessions, load_settings(database_url=database_url))

        # When the overview is read
        overview = await service.overview()
    finally:
        await engine.dispose()

    # Then only the live one is listed
    assert [d["id"] for d in overview["daemons"]] == ["live"]
