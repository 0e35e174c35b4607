"""Hand-off across processes (DESIGN §2 a): an application process with no runtime and
no credentials calls ``sync_after_group_change``; a running daemon does the work."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db.models import SyncStatus
from core.db.session import SessionFactory
from tests.embedding.conftest import Fakes
from tests.engine.conftest import row
from tests.engine.daemon_process import ROOT, Daemon
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

G = 61
APP = (
    "import asyncio\n"
    "from core.group_joining import sync_after_group_change\n"
    f"asyncio.run(sync_after_group_change({G}))\n"
    "print('returned')\n"
)


@pytest.fixture
def daemon(database_url: str, fakes: Fakes, tmp_path: Path) -> Iterator[Daemon]:
    process = Daemon(database_url, fakes.root, tmp_path / "daemon.log")
    yield process
    process.close()


def application_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISCORD_BOT_TOKEN", "GOOGLE_CREDENTIALS_FILE", "ENABLED_SERVICES",
                        "SYNCER_FACTORY", "SENTRY_DSN")}
    # Both services enabled by default and no credentials: building clients here would fail.
    return {**env, "DATABASE_URL": database_url, "LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)}


async def test_a_process_without_runtime_hands_off_and_the_daemon_syncs(
    daemon: Daemon, database_url: str, session_factory: SessionFactory, fakes: Fakes
) -> None:
    await wait_for(lambda: _up(daemon), timeout=60, interval=0.05, message="daemon_started")

    app = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", APP], env=application_env(database_url),
        cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert app.returncode == 0, app.stderr
    output = app.stdout + app.stderr  # structlog prints where the application's config says
    assert app.stdout.strip().endswith("returned")
    assert "sync_handed_off" in output
    assert "Traceback" not in output

    async def synced() -> bool:
        rows = [await row(session_factory, t, G)
                for t in ("discord", "calendar", "reminders", "rsvps")]
        return all(r.status == SyncStatus.OK.value and
                   r.completed_generation == r.requested_generation for r in rows)

    await wait_for(synced, timeout=30, message="the daemon completed the four syncs")
    assert {r["pid"] for r in fakes.runs(group=G)} == {daemon.pid}  # none from the app


def _up(process: Daemon) -> bool:
    assert process.process.poll() is None, process.output()[-3000:]
    return bool(process.events("daemon_started"))


def test_hand_off_with_an_unreachable_database_logs_one_line_and_returns(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere" / "groupsync.db"
    app = subprocess.run(
        [sys.executable, "-c", APP], env=application_env(f"sqlite:///{missing}"),
        cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert app.returncode == 0, app.stderr
    lines = (app.stdout + app.stderr).strip().splitlines()
    assert lines[-1] == "returned"
    (logged,) = lines[:-1]
    assert "handoff_failed" in logged
    assert "migrate" in logged
    assert not missing.parent.exists()  # nothing created
