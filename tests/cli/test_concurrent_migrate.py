"""Several deployments start at once, each running `migrate` first: all must succeed and
leave one schema at head (an advisory lock on PostgreSQL, a file lock on SQLite; the
others wait for it and then find nothing to do). Before the lock, all but the first
failed with UniqueViolation / table exists."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from sqlalchemy import inspect

from core.db.migrate import schema_status
from core.db.session import create_engine
from tests.engine.daemon_process import ROOT

pytestmark = pytest.mark.slow

# Each process imports everything, says so, and migrates on the go line: the three
# migrations start together, not one process start-up apart.
SCRIPT = (
    "import sys\n"
    "from core.cli import main\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "sys.exit(main(['migrate']))\n"
)


async def test_three_migrations_started_together_all_succeed(empty_database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database_url, "ENABLED_SERVICES": "",
           "PYTHONPATH": str(ROOT)}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", SCRIPT, cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            ready = await asyncio.wait_for(process.stdout.readline(), timeout=120)
            assert ready == b"ready\n", ready
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate(b"go\n") for p in processes)), timeout=180
        )
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert [p.returncode for p in processes] == [0, 0, 0], [out.decode() for out, _ in outputs]
    engine = create_engine(empty_database_url)
    try:
        status = await schema_status(engine, empty_database_url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert status.at_head
    assert "sync_state" in tables
