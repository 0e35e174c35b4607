"""An unreachable Sentry adds at most one log line per failure streak, not three
transport warnings (and a traceback) per event. In a subprocess: Sentry and logging are
process-wide."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import sentry_sdk
from core.observability import configure_logging, init_sentry

configure_logging("json", "INFO", stream=sys.stdout)
init_sentry(sys.argv[1], "test")
for n in range(5):  # five failing syncs, each reported
    try:
        raise RuntimeError(f"sync {n} failed")
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=5)
"""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nothing listens there


def test_an_unreachable_sentry_is_one_warning_per_streak() -> None:
    dsn = f"http://publickey0123456789@127.0.0.1:{closed_port()}/1"
    done = subprocess.run([sys.executable, "-c", SCRIPT, dsn], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    events = [json.loads(line).get("event") for line in lines if line.startswith("{")]
    assert events == ["sentry_unreachable"], lines
    assert "publickey0123456789" not in done.stdout + done.stderr
