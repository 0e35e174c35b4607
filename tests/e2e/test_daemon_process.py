"""`python main.py run` as an operator runs it: a real process, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.db.migrate import upgrade
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def daemon_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "GOOGLE_"))}
    env.update(DATABASE_URL=database_url, LOG_FORMAT="json", ENABLED_SERVICES="", **extra)
    return env


def start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "main.py", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], event: str, timeout: float = 30) -> list[str]:
    """The output up to the first ``event`` line (one line read per look)."""
    stdout = process.stdout
    assert stdout is not None
    lines: list[str] = []

    def seen() -> list[str] | None:
        line = stdout.readline()
        if not line:
            pytest.fail(f"the output ended with no {event!r} line; got: {''.join(lines)}")
        lines.append(line)
        return lines if f'"event": "{event}"' in line else None

    try:
        return wait_until(seen, timeout, interval=0, message=f"a {event!r} line",
                          evidence=lambda: f"; got: {''.join(lines)}")
    except BaseException:
        process.kill()
        raise


@pytest.mark.slow
def test_run_logs_json_lines_and_exits_0_within_10s_of_sigterm(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gs.db'}"
    upgrade(url)
    process = start(daemon_env(url, DISCORD_BOT_TOKEN="not-a-real-token-abcdef"))
    started = wait_for_line(process, "daemon_started")

    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=15)
    elapsed = time.monotonic() - sent

    assert process.returncode == 0
    assert elapsed < 10
    lines = [line for line in "".join(started).splitlines() + rest.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON event
    assert {"daemon_started", "daemon_stopped"} <= {e["event"] for e in events}
    assert "not-a-real-token-abcdef" not in "".join(lines)


@pytest.mark.slow
def test_run_refuses_an_unmigrated_database_and_names_the_fix(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    result = subprocess.run(
        [sys.executable, "main.py", "run"],
        cwd=ROOT,
        env=daemon_env(url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "python main.py migrate" in result.stderr
    assert "Traceback" not in result.stderr
