"""Failures, retries and their timers against the real APScheduler and a real database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import structlog

from core.db.models import SyncStatus
from core.lifecycle import sync_group, sync_group_discord_permissions
from core.runtime import Runtime
from tests.engine.conftest import SCALE, Fakes, RuntimeMaker, row
from tests.waiting import wait_for

G = 41


def retry_jobs(rt: Runtime) -> list[Any]:
    assert rt.scheduler is not None
    return [j for j in rt.scheduler.get_jobs() if j.id.startswith("sync_retry_")]


async def test_failing_sync_leaves_exactly_one_job_at_the_rows_next_attempt(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    # Given a discord sync that always fails, and a paused scheduler (timers do not fire)
    fakes.set(f"discord:{G}", "raise")
    rt = await make_runtime(paused=True)

    for failures in range(1, 6):
        # When it is run again
        result = await sync_group_discord_permissions(G)

        # Then there is one pending job for the key, due when the row says
        state = await row(rt.session_factory, "discord", G)
        (job,) = retry_jobs(rt)
        assert result == {"error": "fake upstream 503"}
        assert job.id == f"sync_retry_discord_{G}"
        assert state.attempt == failures
        assert job.next_run_time == state.next_attempt_at
        assert job.kwargs == {"sync_type": "discord", "group_id": G, "attempt": failures,
                              "previous_group_id": None}
        assert state.status == SyncStatus.RETRYING
        assert state.requested_generation > state.completed_generation


async def test_successive_failures_follow_the_backoff_sequence_scaled(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    fakes.set(f"calendar:{G}", "raise")
    rt = await make_runtime()

    with structlog.testing.capture_logs() as logs:
        await sync_group("calendar", G)
        await wait_for(lambda: len(_failed(logs)) >= 8, message="eight failures")

    delays = [e["delay"] / SCALE for e in _failed(logs)[:8]]
    attempts = [e["attempt"] for e in _failed(logs)[:8]]
    assert attempts == list(range(1, 9))
    for delay, base in zip(delays, [1, 2, 4, 8, 16, 32, 60, 60], strict=True):
        assert base <= delay <= base + 1  # jitter in [0, 1); the log rounds to 6 decimals
    assert len(retry_jobs(rt)) <= 1


async def test_keeps_retrying_past_attempt_ten(make_runtime: RuntimeMaker, fakes: Fakes) -> None:
    fakes.set(f"rsvps:{G}", "error")
    rt = await make_runtime()

    await sync_group("rsvps", G)

    async def past_ten() -> bool:
        return (await row(rt.session_factory, "rsvps", G)).attempt >= 12

    await wait_for(past_ten, message="attempt 12")
    assert len(fakes.runs("rsvps", G)) >= 12


async def test_a_success_removes_the_pending_retry_and_resets_the_row(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    # Given a key that has failed a few times
    fakes.set(f"reminders:{G}", "raise")
    rt = await make_runtime()
    await sync_group("reminders", G)

    async def attempts(n: int) -> bool:
        return (await row(rt.session_factory, "reminders", G)).attempt >= n

    await wait_for(lambda: attempts(3), message="three failures")

    # When the service recovers, the armed retry succeeds
    fakes.set(f"reminders:{G}", "ok")

    async def ok() -> bool:
        return (await row(rt.session_factory, "reminders", G)).status == SyncStatus.OK

    await wait_for(ok, message="success")

    # Then the row is reset and no retry is pending
    state = await row(rt.session_factory, "reminders", G)
    assert (state.attempt, state.next_attempt_at, state.failing_since, state.last_error) == (
        0, None, None, None)
    assert state.completed_generation == state.requested_generation
    assert state.sentry_reported_level == 0
    assert state.last_success_at is not None
    assert retry_jobs(rt) == []


@pytest.mark.parametrize(
    ("mode", "result"),
    [("error", {"error": "fake says no"}),
     ("failed", {"granted": 1, "revoked": 0, "unchanged": 0, "failed": 3})],
)
async def test_error_and_failed_results_are_failures(
    make_runtime: RuntimeMaker, fakes: Fakes, mode: str, result: dict[str, Any]
) -> None:
    fakes.set(f"discord:{G}", mode)
    rt = await make_runtime(paused=True)

    with structlog.testing.capture_logs() as logs:
        returned = await sync_group_discord_permissions(G)

    state = await row(rt.session_factory, "discord", G)
    assert returned == result
    assert (state.attempt, state.status) == (1, SyncStatus.RETRYING)
    assert state.last_result == result
    assert len(retry_jobs(rt)) == 1
    (failure,) = _failed(logs)
    assert {k: failure[k] for k in ("sync_type", "group_id", "attempt", "outcome")} == {
        "sync_type": "discord", "group_id": G, "attempt": 1, "outcome": "retrying"}
    assert failure["delay"] > 0
    assert failure["error"]
    assert "duration_ms" in failure


async def test_retry_after_longer_than_the_backoff_delays_the_retry(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    # retry_after is in the service's own time: 5 s stays 5 s even at a 0.001 scale
    fakes.set(f"calendar:{G}", "rate_limited", retry_after=5.0)
    rt = await make_runtime(paused=True)

    await sync_group("calendar", G)

    state = await row(rt.session_factory, "calendar", G)
    assert state.next_attempt_at is not None
    assert state.last_attempt_at is not None
    delay = state.next_attempt_at - state.last_attempt_at
    assert timedelta(seconds=5) <= delay < timedelta(seconds=5.5)
    (job,) = retry_jobs(rt)
    assert job.next_run_time == state.next_attempt_at


async def test_needs_attention_is_shown_and_still_retried(
    make_runtime: RuntimeMaker, fakes: Fakes
) -> None:
    fakes.set(f"discord:{G}", "needs_attention")
    rt = await make_runtime()

    await sync_group_discord_permissions(G)

    seen: list[Any] = []

    async def retried_and_idle() -> bool:
        seen.append(await row(rt.session_factory, "discord", G))
        return seen[-1].attempt >= 3 and seen[-1].status != SyncStatus.RUNNING

    await wait_for(retried_and_idle, message="retries of a needs-attention key")
    state = seen[-1]  # the snapshot the condition saw: a later read may be mid-run
    assert state.status == SyncStatus.NEEDS_ATTENTION
    assert state.last_error == "Missing Access"
    assert state.error_kind == "needs_attention"


def _failed(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "sync_failed"]
