"""``groupsync status`` end to end: a fresh process per run, as an operator types it.

A SQLite database (migrated, with a few hundred keys and a paused service) and a warm
machine (one unmeasured run first, so the files are in the page cache and their bytecode
cached); then N runs of
``python main.py status`` and of ``status --json``, wall-clock from spawn to exit.
Target: median and p90 under 1 s. Prints one JSON line.
Usage: uv run python -m bench.status_latency [N]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.db.migrate import upgrade
from core.db.models import Group, ServiceState, SyncState
from core.db.session import create_engine, create_session_factory

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0


async def seed(url: str, keys: int) -> None:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        session.add(ServiceState(service="calendar", paused=True, paused_reason="bench",
                                 updated_at=now))
        for n in range(1, keys + 1):
            session.add(Group(id=n, name=f"group {n}"))
        await session.flush()
        for n in range(1, keys + 1):
            session.add(SyncState(
                sync_type="discord", group_id=n, status="retrying", requested_generation=1,
                completed_generation=0, attempt=3, next_attempt_at=now + timedelta(minutes=1),
                last_error="Discord 503", error_kind="transient",
                failing_since=now - timedelta(minutes=12), updated_at=now))
    await engine.dispose()


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"status failed: {done.stderr}")
    return elapsed


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        upgrade(url)
        asyncio.run(seed(url, 300))
        env = {**os.environ, "DATABASE_URL": url, "ENABLED_SERVICES": ""}
        env.pop("SENTRY_DSN", None)
        # Warm means what an installed groupsync has: bytecode caches (pip and uv compile
        # site-packages at install; the project's own modules are cached at their first run)
        # and the files in the page cache. With PYTHONDONTWRITEBYTECODE set, as on some CI
        # images, every run would compile ~400 modules from source (1.7 s under cProfile).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        timed(["status"], env)  # warm: not measured
        result = {"bench": "status_latency", "runs": runs, "target_s": TARGET_SECONDS}
        for name, argv in (("status", ["status"]), ("status_json", ["status", "--json"])):
            samples = sorted(timed(argv, env) for _ in range(runs))
            result[f"{name}_median_s"] = round(statistics.median(samples), 3)
            result[f"{name}_p90_s"] = round(samples[int(0.9 * (len(samples) - 1))], 3)
        result["ok"] = max(result["status_p90_s"], result["status_json_p90_s"]) < TARGET_SECONDS
        print(json.dumps(result))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
