"""States that say what is really happening, over loopback with a real daemon against the
sandbox: a key waiting on an open circuit says so, with a next run in the future, in
``status --json``, the API and a refused retry; ``retry --here`` is refused too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.admin.commands import render_status
from core.admin.keys import KeyFilter
from tests.admin.conftest import DiscordStorm, discord_of
from tests.e2e.conftest import sandbox  # noqa: F401 (fixture)
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def future(iso: str | None) -> bool:
    if not iso:
        return False
    at = datetime.fromisoformat(iso)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)) > datetime.now(UTC)


async def test_a_key_behind_an_open_circuit_says_so_everywhere_with_a_future_next_run(
    discord_storm: DiscordStorm, database_url: str,
) -> None:
    group, from_rows = discord_storm.group, discord_storm.from_rows
    async with discord_storm.daemon.client() as api:
        seen: list[dict[str, Any]] = []

        async def parked() -> bool:
            seen.append((await api.get(f"/api/keys/discord/{group.id}")).json())
            return bool((seen[-1].get("waiting") or {}).get("code") == "circuit_open")

        await wait_for(parked, timeout=60, interval=0.1,
                       message="the key waiting on the circuit")
        key = seen[-1]
        listed = (await api.get("/api/keys", params={"service": "discord"})).json()
        refused = await api.post(f"/api/keys/discord/{group.id}/retry")

        await wait_for(discord_storm.heartbeat_says_open, timeout=10, message="the heartbeat")
        view = await from_rows.overview()
        failing = await from_rows.list_keys(KeyFilter(status="failing"))
        here = await asyncio.to_thread(subprocess.run, [
            sys.executable, "main.py", "retry", "discord", str(group.id), "--here"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, env={
                **os.environ, "DATABASE_URL": database_url, "ENABLED_SERVICES": "discord",
                "PYTHONPATH": str(ROOT)})
        discord_storm.storm.clear()

    half_open_at = discord_of(view)["breaker"]["half_open_at"]
    # The API: the reason and a next run in the future (the row alone says "due").
    assert key["waiting"]["code"] == "circuit_open"
    assert future(key["next_run_at"])
    assert key["next_run_at"] == key["waiting"]["until"]
    assert "circuit is open" in key["waiting"]["detail"]
    item = next(i for i in listed["items"] if i["group_id"] == group.id)
    assert item["waiting"]["code"] == "circuit_open"
    # retry now is refused with the reason, not "already due to run now".
    assert refused.status_code == 409
    assert "circuit is open" in refused.json()["detail"]
    assert "already due" not in refused.json()["detail"]
    # status --json (from the database alone) says the same.
    row = next(i for i in failing["items"] if i["group_id"] == group.id)
    assert row["waiting"]["code"] == "circuit_open"
    assert future(row["next_run_at"])
    assert future(half_open_at)
    text = render_status(view, failing, [])
    assert "waiting: circuit_open" in text
    assert "(in " in text  # relative times beside absolute ones
    # retry --here: refused with one line, before any client is built.
    assert here.returncode == 1
    assert here.stderr.strip().count("\n") == 0, here.stderr
    assert "circuit is open" in here.stderr
    assert "--force" in here.stderr
    assert here.stdout == ""
