"""Three `migrate` started together all succeed (an advisory lock on PostgreSQL, a file
lock on SQLite); before, all but the first failed with UniqueViolation / table exists."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from core.db.migrate import schema_status
from core.db.session import create_engine
from tests.engine.daemon_process import ROOT

pytestmark = pytest.mark.slow


async def test_three_migrations_started_together_all_succeed(empty_database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database_url, "PYTHONPATH": str(ROOT)}
    # All import first, then wait for the same moment to start migrating.
    script = (
        "import sys, time\n"
        "from core.cli import main\n"
        "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
        "sys.exit(main(['migrate']))\n"
    )
    start_at = str(time.time() + 25)

    def migrate() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", script, start_at], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=240)

    results = await asyncio.gather(*(asyncio.to_thread(migrate) for _ in range(3)))

    for result in results:
        assert result.returncode == 0, result.stderr
    engine = create_engine(empty_database_url)
    try:
        assert (await schema_status(engine, empty_database_url)).at_head
    finally:
        await engine.dispose()
