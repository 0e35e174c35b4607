"""The README's embedding example works as written (from the checkout; the wheel test
runs it again from an installed wheel)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.db.migrate import upgrade
from tests.packaging.readme import ROOT, embedding_example

pytestmark = pytest.mark.slow


def test_the_readme_embedding_example_runs_and_syncs(tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(embedding_example())
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'app.db'}")  # "After groupsync migrate"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SYNCER"))}

    run = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=180, env={**env, "PYTHONPATH": str(ROOT)})

    assert run.returncode == 0, run.stderr
    assert "leading: True" in run.stdout
    assert_group_42_synced(tmp_path / "var" / "app.db")


def assert_group_42_synced(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        rows = dict(connection.execute(
            "SELECT sync_type, status FROM sync_state WHERE group_id = 42").fetchall())
    assert rows == dict.fromkeys(("discord", "calendar", "reminders", "rsvps"), "ok")
