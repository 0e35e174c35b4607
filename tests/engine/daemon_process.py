"""Run ``python main.py run`` as a real subprocess and read its JSON log lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def spawn_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python main.py run`` with exactly ``env``, its output in ``log`` (for tests that
    set every variable themselves; ``Daemon`` fills in the fake-syncer defaults)."""
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "main.py", "run"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


class Daemon:
    def __init__(self, database_url: str, fake_dir: Path, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SYNCER_FACTORY": "tests.engine.fake_syncers:build_fake_syncers",
            # The fake syncers call no service, so none needs credentials.
            "ENABLED_SERVICES": "",
            "GROUPSYNC_FAKE_DIR": str(fake_dir),
            "LOG_FORMAT": "json",
            "TIME_SCALE": "0.01",
            "OUTBOX_POLL_SECONDS": "0.2",
            "SHUTDOWN_TIMEOUT_SECONDS": "2",
            # A killed daemon's leases expire this soon (a takeover frees no live lease).
            "LEASE_SECONDS": "4",
            "ADMIN_PORT": "0",  # several daemons, and other tests, on one machine
            "PYTHONPATH": str(ROOT),
            **env,
        }
        environment.pop("SENTRY_DSN", None)
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "main.py", "run"], cwd=ROOT, env=environment,
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if name is None or event.get("event") == name:
                events.append(event)
        return events

    def output(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 15) -> tuple[int, float]:
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code, time.monotonic() - started

    def close(self) -> None:
        self.kill()
        self._log.close()
