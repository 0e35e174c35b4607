"""Every route but health needs the bearer token; a public bind without one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.admin.face import AdminFace
from core.config import load_settings
from core.errors import ConfigError
from tests.admin.conftest import TOKEN, AdminDaemon, DaemonMaker
from tests.engine.conftest import Fakes
from tests.engine.daemon_process import Daemon
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]

PROTECTED = ["/api/overview", "/api/keys", "/api/bulk-jobs", "/metrics", "/openapi.json"]


@pytest.mark.parametrize("path", PROTECTED)
async def test_401_without_or_with_a_wrong_token_200_with_it(
    daemon: AdminDaemon, path: str
) -> None:
    async with daemon.client(token=None) as anonymous, daemon.client(token="wrong") as wrong, \
            daemon.client() as operator:
        missing = await anonymous.get(path)
        bad = await wrong.get(path)
        good = await operator.get(path)
    assert (missing.status_code, bad.status_code, good.status_code) == (401, 401, 200)
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 401
    assert "test-admin-token" not in bad.text


async def test_health_answers_without_a_token(daemon: AdminDaemon) -> None:
    async with daemon.client(token=None) as anonymous:
        alive = await anonymous.get("/healthz")
        ready = await anonymous.get("/readyz")
    assert alive.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert ready.json()["schema"] == "head"
    assert ready.json()["role"] == "active"


def test_a_public_bind_without_a_token_refuses_to_start() -> None:
    settings = load_settings(admin_host="0.0.0.0", admin_token=None)
    with pytest.raises(ConfigError, match="ADMIN_TOKEN"):
        AdminFace(settings)


def test_a_loopback_bind_without_a_token_starts() -> None:
    AdminFace(load_settings(admin_host="127.0.0.1", admin_token=None))


@pytest.mark.slow
async def test_the_daemon_command_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    import asyncio
    import os
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/gs.db", "ENABLED_SERVICES": "",
           "ADMIN_HOST": "0.0.0.0", "PYTHONPATH": str(ROOT)}
    env.pop("ADMIN_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "main.py", "run", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 2
    assert "ADMIN_TOKEN" in err.decode()
    assert "0.0.0.0" in err.decode()


async def test_a_standby_answers_health_and_reads_and_names_the_active_daemon(
    start_daemon: DaemonMaker, database_url: str, fakes: Fakes, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("a standby needs PostgreSQL (SQLite refuses a second daemon)")
    # The leader is a real daemon process: one process holds one groupsync runtime.
    leader_process = Daemon(database_url, fakes.root, tmp_path / "leader.log",
                            ADMIN_TOKEN=TOKEN)
    try:
        await wait_for(lambda: bool(leader_process.events("leadership_acquired")),
                       timeout=60, message="the daemon process to lead")
        second = await start_daemon()
        assert second.face.presence is not None
        standby_id = second.face.presence.id

        async def both_seen() -> bool:
            async with second.client() as api:
                daemons = (await api.get("/api/overview")).json()["daemons"]
            roles = {d["role"]: d for d in daemons}
            return (roles.get("active", {}).get("pid") == leader_process.pid
                    and roles.get("standby", {}).get("id") == standby_id)

        await wait_for(both_seen, timeout=20, message="both heartbeats")
        async with second.client(token=None) as anonymous, second.client() as api:
            ready = (await anonymous.get("/readyz")).json()
            overview = await api.get("/api/overview")
            keys = await api.get("/api/keys")
        # An operator signs in to the standby: reads work, an action says where it runs
        # (a problem body the page shows as a message; the sign-in itself is never one).
        async with second.client(token=None) as browser:
            signed_in = await browser.post("/login", data={"token": TOKEN})
            page = await browser.get("/")
            csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            read = await browser.get("/api/keys")
            action = await browser.post("/api/services/discord/pause",
                                        headers={"X-CSRF-Token": csrf})
            signed_out = await browser.post("/logout", data={"csrf_token": csrf})
        assert signed_in.status_code == 303
        assert (page.status_code, page.headers["X-Groupsync-Role"]) == (200, "standby")
        assert read.status_code == 200
        assert action.status_code == 503
        assert action.json()["availability"] == "standby"
        assert "active daemon" in action.json()["detail"]
        assert signed_out.status_code == 303
        leader = overview.json()["active_daemon"]
        assert [d["pid"] for d in overview.json()["daemons"] if d["id"] == leader] == [
            leader_process.pid]
        assert (ready["role"], ready["active_daemon"]) == ("standby", leader)
        assert overview.headers["X-Groupsync-Role"] == "standby"
        assert keys.status_code == 200
    finally:
        leader_process.close()


async def test_the_dashboard_session_opens_the_api_and_actions_need_its_csrf_token(
    daemon: AdminDaemon,
) -> None:
    import re

    async with daemon.client(token=None) as browser:
        login = await browser.post("/login", data={"token": TOKEN})
        page = await browser.get("/")
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        read = await browser.get("/api/overview")
        forged = await browser.post("/api/services/discord/pause")
        assert csrf is not None
        action = await browser.post("/api/services/discord/pause",
                                    headers={"X-CSRF-Token": csrf.group(1)})
    assert login.status_code in (200, 303)
    assert read.status_code == 200
    assert forged.status_code == 403
    assert action.status_code == 200
