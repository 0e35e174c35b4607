"""Several deployments start at once, each running `migrate` first: all must succeed and
leave one schema at head (the migration takes a database lock; the others wait for it
and then find nothing to do)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from core.db.migrate import schema_status
from core.db.session import create_engine

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


async def test_three_concurrent_migrate_commands_all_succeed(empty_database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database_url, "ENABLED_SERVICES": ""}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "main.py", "migrate", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [
        (await asyncio.wait_for(p.communicate(), timeout=180))[0].decode() for p in processes
    ]

    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    engine = create_engine(empty_database_url)
    try:
        status = await schema_status(engine, empty_database_url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert status.at_head
    assert "sync_state" in tables
