"""The admin API's actions against a real daemon (fake syncers), over loopback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db.models import BulkJobItem, SyncAttempt
from core.db.session import SessionFactory
from tests.admin.conftest import AdminDaemon
from tests.admin.helpers import failing_keys, key_row
from tests.engine.conftest import Fakes
from tests.waiting import wait_for


async def test_retry_one_runs_the_key_and_refuses_while_it_runs(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    (group,) = await failing_keys(admin_sessions, 1)
    fakes.set(f"discord:{group}", "ok", sleep=1.5)
    async with daemon.client() as api:
        first = await api.post(f"/api/keys/discord/{group}/retry")
        assert first.status_code == 202
        async def running() -> bool:
            return (await key_row(admin_sessions, "discord", group)).status == "running"

        await wait_for(running, timeout=20, message="the retried key running")
        busy = await api.post(f"/api/keys/discord/{group}/retry")
        await wait_for(lambda: len(fakes.runs("discord", group)) == 1, timeout=20)
        unknown = await api.post("/api/keys/discord/999999/retry")

        async def recorded() -> bool:  # the history row follows the run's own record
            detail = (await api.get(f"/api/keys/discord/{group}")).json()
            return [h["outcome"] for h in detail["history"]] == ["ok"]

        await wait_for(recorded, timeout=20, message="the run in the key's history")
    assert busy.status_code == 409
    assert busy.headers["content-type"] == "application/problem+json"
    assert "running" in busy.json()["detail"]
    assert unknown.status_code == 404


async def test_retry_of_a_key_already_due_is_409(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    (group,) = await failing_keys(admin_sessions, 1, "calendar", due_in=timedelta(hours=1))
    fakes.set("*", "needs_attention", sleep=2)
    async with daemon.client() as api:
        first = await api.post(f"/api/keys/calendar/{group}/retry")
        second = await api.post(f"/api/keys/calendar/{group}/retry")
    assert first.status_code == 202
    assert second.status_code == 409
    assert "already due" in second.json()["detail"] or "running" in second.json()["detail"]


async def test_an_idempotency_key_performs_the_action_once(
    daemon: AdminDaemon, admin_sessions: SessionFactory
) -> None:
    headers = {"Idempotency-Key": "pause-1"}
    async with daemon.client() as api:
        first = await api.post("/api/services/discord/pause", headers=headers)
        again = await api.post("/api/services/discord/pause", headers=headers)
        overview = (await api.get("/api/overview")).json()
    assert first.json()["changed"] is True
    assert again.json() == first.json()  # replayed, not performed again (it would say False)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert {s["name"]: s["paused"] for s in overview["services"]}["discord"] is True


@pytest.mark.slow
async def test_bulk_retry_of_300_failing_keys_reports_progress_to_completion(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    groups = await failing_keys(admin_sessions, 300)
    async with daemon.client() as api:
        preview = (await api.post("/api/bulk-retry/preview", json={"service": "discord"})).json()
        started = await api.post("/api/bulk-retry", json={"service": "discord", "confirm": True})
        job_id = started.json()["job"]["id"]
        seen: list[dict[str, int]] = []

        async def finished() -> bool:
            job = (await api.get(f"/api/bulk-jobs/{job_id}")).json()
            seen.append(job)
            return bool(job["state"] == "done")

        await wait_for(finished, timeout=120, interval=0.2, message="bulk job done")
    assert (preview["keys"], preview["groups"]) == (300, 300)
    assert started.status_code == 202
    last = seen[-1]
    assert (last["done"], last["failed"], last["remaining"], last["total"]) == (300, 0, 0, 300)
    assert any(0 < s["done"] < 300 for s in seen), "progress was visible on the way"
    assert all(s["done"] + s["failed"] + s["remaining"] == 300 for s in seen)
    assert {r["group"] for r in fakes.runs("discord")} == set(groups)
    assert {r["lane"] for r in fakes.runs("discord")} == {"background"}
    assert (await key_row(admin_sessions, "discord", groups[0])).status == "ok"


async def test_a_cancelled_bulk_leaves_the_unstarted_keys_untouched(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    groups = await failing_keys(admin_sessions, 40)
    before = {g: await key_row(admin_sessions, "discord", g) for g in groups}
    # Long runs, and the cancel only once a second batch is running: between two batches
    # nothing runs, and a cancel there is "cancelled" at once (CI hit that gap).
    fakes.set("discord:*", "ok", sleep=1.5)
    async with daemon.client() as api:
        job_id = (await api.post("/api/bulk-retry", json={"confirm": True})).json()["job"]["id"]

        async def second_batch_running() -> bool:
            async with admin_sessions() as session:
                running = (await session.scalars(select(BulkJobItem.group_id).where(
                    BulkJobItem.job_id == job_id, BulkJobItem.state == "running"))).all()
            ran = {r["group"] for r in fakes.runs("discord")}
            return bool(ran) and bool(set(running) - ran)

        await wait_for(second_batch_running, timeout=30, interval=0.05,
                       message="the bulk under way")
        cancelled = (await api.post(f"/api/bulk-jobs/{job_id}/cancel")).json()
        seen = []

        async def settled() -> bool:
            job = (await api.get(f"/api/bulk-jobs/{job_id}")).json()
            seen.append(job)
            return bool(job["remaining"] == 0 and job["finished_at"] is not None)

        await wait_for(settled, timeout=30, message="the cancelled job finished")
        job = (await api.get(f"/api/bulk-jobs/{job_id}")).json()
    # Items were running at the cancel: "cancelling" until they end, then "cancelled".
    assert (cancelled.get("state"), cancelled.get("finished_at")) == ("cancelling", None), cancelled
    assert all(s["state"] == "cancelling" for s in seen if s["finished_at"] is None)
    assert (job["state"], job["remaining"]) == ("cancelled", 0)
    assert job["finished_at"] is not None
    assert job["cancelled"] > 0
    assert job["done"] + job["cancelled"] == 40
    async with admin_sessions() as session:
        untouched = (await session.scalars(select(BulkJobItem.group_id).where(
            BulkJobItem.job_id == job_id, BulkJobItem.state == "cancelled"))).all()
        attempts = (await session.scalars(select(SyncAttempt.group_id))).all()
    ran = {r["group"] for r in fakes.runs("discord")}
    assert len(untouched) == job["cancelled"]
    for group in untouched:
        now = await key_row(admin_sessions, "discord", group)
        was = before[group]
        assert (now.status, now.attempt, now.next_attempt_at, now.requested_generation) == (
            was.status, was.attempt, was.next_attempt_at, was.requested_generation)
        assert group not in ran
        assert group not in attempts


async def test_pause_stops_every_call_while_changes_pile_up_and_resume_converges(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    from core.engine.running.outbox import mark_owed
    from tests.factories import make_group

    async with daemon.client() as api:
        assert (await api.post("/api/services/calendar/pause")).status_code == 200
        async with admin_sessions() as session, session.begin():
            groups = [(await make_group(session)).id for _ in range(5)]
        from datetime import UTC, datetime
        for _ in range(3):
            async with admin_sessions() as session, session.begin():
                await mark_owed(session, groups, datetime.now(UTC))

        async def discord_done() -> bool:
            return all([(await key_row(admin_sessions, "discord", g)).status == "ok"
                        for g in groups])

        await wait_for(discord_done, timeout=30, message="the unpaused service converged")
        assert fakes.runs("calendar") == []
        assert fakes.runs("rsvps") == []
        assert (await key_row(admin_sessions, "calendar", groups[0])).requested_generation > 0
        overview = (await api.get("/api/overview")).json()
        assert (await api.post("/api/services/calendar/resume")).status_code == 200

        async def all_done() -> bool:
            rows = [await key_row(admin_sessions, t, g) for t in ("calendar", "rsvps")
                    for g in groups]
            return all(r.status == "ok" and r.requested_generation == r.completed_generation
                       for r in rows)

        await wait_for(all_done, timeout=30, message="the resumed service converged")
    paused = {s["name"]: s["paused"] for s in overview["services"]}
    assert paused == {"discord": False, "calendar": True}
    assert {r["group"] for r in fakes.runs("calendar")} == set(groups)
    assert len(fakes.runs("calendar")) <= 2 * len(groups)  # coalesced, not one per change


async def test_a_paused_service_owing_more_than_a_sweep_batch_does_not_starve_the_others(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    from datetime import UTC, datetime

    from core.db.models import SyncType
    from core.engine.loops.sweeper import SWEEP_BATCH
    from core.engine.running.outbox import mark_owed

    async with daemon.client() as api:
        await api.post("/api/services/discord/pause")
        async with admin_sessions() as session, session.begin():
            await mark_owed(session, range(1, SWEEP_BATCH + 51), datetime.now(UTC),
                            [SyncType.DISCORD])
        async with admin_sessions() as session, session.begin():
            await mark_owed(session, [9999], datetime.now(UTC), [SyncType.CALENDAR])
        await wait_for(lambda: len(fakes.runs("calendar", 9999)) == 1, timeout=30,
                       message="the unpaused key swept past the paused ones")
    assert fakes.runs("discord") == []


async def test_a_pause_given_an_end_ends_by_itself_and_its_keys_converge(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    """``for_seconds`` is the operator's wall-clock window: nobody resumes, and once it
    has passed every daemon calls the service again (the rows say so, not a timer)."""
    from datetime import UTC, datetime

    from core.engine.running.outbox import mark_owed
    from tests.factories import make_group

    async with daemon.client() as api:
        refused = await api.post("/api/services/calendar/pause", json={"for_seconds": 0})
        assert refused.status_code == 422
        answer = await api.post("/api/services/calendar/pause",
                                json={"reason": "Google maintenance", "for_seconds": 3})
        assert answer.status_code == 200
        until = datetime.fromisoformat(answer.json()["paused_until"])
        async with admin_sessions() as session, session.begin():
            group = (await make_group(session)).id
            await mark_owed(session, [group], datetime.now(UTC))
        calendar = next(s for s in (await api.get("/api/overview")).json()["services"]
                        if s["name"] == "calendar")
        key = (await api.get(f"/api/keys/calendar/{group}")).json()

        async def converged() -> bool:
            row = await key_row(admin_sessions, "calendar", group)
            return row.status == "ok" and row.requested_generation == row.completed_generation

        await wait_for(converged, timeout=30, message="the calendar key after the pause ended")
        ran_at = datetime.now(UTC)
        after = next(s for s in (await api.get("/api/overview")).json()["services"]
                     if s["name"] == "calendar")
    assert calendar["paused"] is True
    assert calendar["paused_until"] == until.isoformat()
    assert key["waiting"]["code"] == "paused"
    assert key["waiting"]["until"] == until.isoformat()
    assert "until" in key["waiting"]["detail"]
    assert ran_at >= until  # not before the window ended
    assert [r["group"] for r in fakes.runs("calendar")] == [group]
    assert after["paused"] is False
    assert after["paused_until"] is None
