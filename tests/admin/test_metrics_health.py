"""/metrics parses with prometheus-client's parser and agrees with the database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from core.db.models import CalendarSyncToken, ReminderDelivery, SyncState
from core.db.session import SessionFactory
from tests.admin.conftest import AdminDaemon
from tests.admin.helpers import failing_keys
from tests.engine.conftest import Fakes
from tests.factories import make_group
from tests.waiting import wait_for

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


async def test_metrics_agree_with_the_database(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    await failing_keys(admin_sessions, 3, "calendar")
    now = datetime.now(UTC)
    async with admin_sessions() as session, session.begin():
        session.add(CalendarSyncToken(calendar_id="c@group.calendar.google.com",
                                      sync_token="t", synced_at=now - timedelta(seconds=90)))
        group = await make_group(session)
        for offset, status in ((1440, "sent"), (60, "skipped"), (30, "scheduled")):
            session.add(ReminderDelivery(meeting_id=1, offset_minutes=offset, group_id=group.id,
                                         fire_at=now + timedelta(hours=1), status=status,
                                         nonce=f"n{offset}"))
    fakes.set("calendar:*", "needs_attention")
    async with daemon.client() as api:
        await api.post("/api/services/discord/pause")
        job = (await api.post("/api/bulk-retry", json={"confirm": True})).json()["job"]

        async def job_done() -> bool:
            return bool((await api.get(f"/api/bulk-jobs/{job['id']}")).json()["state"] == "done")

        await wait_for(job_done, timeout=60)
        # Their retries keep failing fast on the test time scale: pause to hold them still.
        await api.post("/api/services/calendar/pause")

        async def snapshot() -> list[tuple[str, int, str, int]]:
            async with admin_sessions() as session:
                rows = await session.execute(
                    select(SyncState.sync_type, SyncState.group_id, SyncState.status,
                           SyncState.attempt).order_by(SyncState.sync_type, SyncState.group_id))
            return [tuple(row) for row in rows]  # type: ignore[misc]

        # A retry already past the pause check when the pause landed still finishes and
        # writes its outcome: "nothing running" at one instant is not "still". Wait until
        # no row changes across a second (twice the pause cache's lifetime).
        before: list[tuple[str, int, str, int]] = []

        async def still() -> bool:
            nonlocal before
            now_rows = await snapshot()
            unchanged = now_rows == before and all(row[2] != "running" for row in now_rows)
            before = now_rows
            if not unchanged:
                await asyncio.sleep(1.0)
            return unchanged

        await wait_for(still, timeout=60)
        response = await api.get("/metrics")
        assert await snapshot() == before, "the rows moved while /metrics was read"
    assert response.status_code == 200
    found = samples(response.text)
    async with admin_sessions() as session:
        rows = (await session.execute(select(SyncState.sync_type, SyncState.status, func.count())
                                      .group_by(SyncState.sync_type, SyncState.status))).all()
    keys = {(s["sync_type"], s["status"]): v for s, v in found["groupsync_sync_keys"]}
    assert keys == {(t, st): float(n) for t, st, n in rows}
    assert keys[("calendar", "needs_attention")] == 3.0
    paused = {s["service"]: v for s, v in found["groupsync_service_paused"]}
    assert paused == {"discord": 1.0, "calendar": 1.0}
    states = {(s["service"], s["state"]): v for s, v in found["groupsync_service_state"]}
    assert {k for k, v in states.items() if v == 1.0} == {("discord", "paused"),
                                                         ("calendar", "paused")}
    reminders = {s["status"]: v for s, v in found["groupsync_reminders"]}
    assert reminders == {"sent": 1.0, "skipped": 1.0, "scheduled": 1.0}
    bulk = {s["state"]: v for s, v in found["groupsync_bulk_job_items"]
            if s["job_id"] == str(job["id"])}
    assert bulk == {"done": 0.0, "failed": 3.0, "remaining": 0.0, "cancelled": 0.0}
    attempts = {(s["sync_type"], s["outcome"]): v
                for s, v in found["groupsync_sync_attempts_total"]}
    assert attempts[("calendar", "needs_attention")] >= 3.0
    assert "groupsync_sync_duration_seconds_bucket" in found
    assert {s["role"]: v for s, v in found["groupsync_daemons"]}["active"] == 1.0
    (lag,) = found["groupsync_calendar_sync_age_seconds"]
    assert lag[0] == {"calendar_id": "c@group.calendar.google.com"}
    assert 90.0 <= lag[1] < 600.0


async def test_readyz_says_role_and_schema(daemon: AdminDaemon) -> None:
    async with daemon.client(token=None) as anonymous:
        ready = (await anonymous.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["role"] == "active"
    assert ready["revision"] == ready["head"]
    assert ready["active_daemon"] is not None


async def test_the_dockerfile_healthcheck_passes_against_a_ready_daemon(
    daemon: AdminDaemon,
) -> None:
    import json
    import os
    import sys
    dockerfile = DOCKERFILE.read_text()
    line = next(line for line in dockerfile.splitlines() if "CMD [" in line and "/readyz" in line)
    command = json.loads(line.strip().removeprefix("CMD "))
    assert "/readyz" in command[-1]
    port = daemon.url.rsplit(":", 1)[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], env={**os.environ, "ADMIN_PORT": port})
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0
