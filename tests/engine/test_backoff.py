"""Pure decisions: the backoff formula and what to record after a failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.db.models import SyncStatus
from core.engine.running.backoff import scaled_delay
from core.engine.running.outcomes import (
    Milestones,
    StreakSoFar,
    classify_exception,
    classify_result,
    decide_failure,
    sentry_level,
)
from core.errors import CircuitOpenError, NeedsAttentionError, RateLimitedError
from core.notifications.scheduler import get_retry_delay

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
MILESTONES = Milestones(attempts=(10, 100), ages_seconds=(3600.0,))


def test_delay_sequence_without_jitter() -> None:
    delays = [get_retry_delay(a, include_jitter=False) for a in range(8)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]


@pytest.mark.parametrize("attempt", [7, 10, 50, 10_000])
def test_delay_stays_at_the_cap_for_ever(attempt: int) -> None:
    assert get_retry_delay(attempt, include_jitter=False) == 60


def test_jitter_is_within_zero_and_one_and_not_constant() -> None:
    jitters = [get_retry_delay(3) - 8 for _ in range(200)]
    assert all(0 <= j < 1 for j in jitters)
    assert len(set(jitters)) > 150


@pytest.mark.parametrize("attempt", [-1, 1.5, "2", True, None])
def test_invalid_attempt_is_a_value_error(attempt: object) -> None:
    with pytest.raises(ValueError, match="attempt"):
        get_retry_delay(attempt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backoff", "scale", "retry_after", "expected"),
    [
        (4.0, 1.0, None, 4.0),
        (4.0, 0.001, None, 0.004),
        (4.0, 1.0, 30.0, 30.0),  # the server's hint is longer: it wins
        (4.0, 1.0, 2.0, 4.0),  # shorter hint: backoff stands
        (4.0, 0.001, 0.5, 0.5),  # the hint is not scaled again
    ],
)
def test_scaled_delay(backoff: float, scale: float, retry_after: float | None,
                      expected: float) -> None:
    assert scaled_delay(backoff, scale, retry_after) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        ({"granted": 1, "revoked": 0, "unchanged": 3, "failed": 0}, False),
        ({"meetings": 2}, False),
        ({"error": "calendar not found"}, True),
        ({"created": 0, "failed": 3}, True),
        ({"error": ""}, False),
    ],
)
def test_classify_result(result: dict[str, object], failed: bool) -> None:
    assert classify_result(result).ok is not failed


def test_classify_exception_keeps_kind_and_hint() -> None:
    outcome = classify_exception(RateLimitedError("429", retry_after=12.5))
    assert (outcome.ok, outcome.error_kind, outcome.retry_after) == (False, "rate_limited", 12.5)
    assert classify_exception(CircuitOpenError("open", retry_after=30)).retry_after == 30
    assert classify_exception(RuntimeError("bug")).error_kind == "RuntimeError"


@pytest.mark.parametrize(
    ("attempt", "age_s", "expected"),
    [(1, 0, 1), (9, 0, 1), (10, 0, 2), (100, 0, 3), (2, 3600, 2), (100, 7200, 4)],
)
def test_sentry_level_counts_milestones(attempt: int, age_s: float, expected: int) -> None:
    assert sentry_level(attempt, age_s, MILESTONES) == expected


@pytest.mark.parametrize(
    ("streak", "exc", "expected"),
    [
        # first failure of a streak: attempt 1, reported, failing_since now
        (StreakSoFar(0, None, 0), RuntimeError("x"), (1, SyncStatus.RETRYING, True, NOW)),
        # third failure: not reported again
        (StreakSoFar(2, NOW - timedelta(seconds=7), 1), RuntimeError("x"),
         (3, SyncStatus.RETRYING, False, NOW - timedelta(seconds=7))),
        # tenth failure: a milestone, reported again
        (StreakSoFar(9, NOW - timedelta(minutes=5), 1), RuntimeError("x"),
         (10, SyncStatus.RETRYING, True, NOW - timedelta(minutes=5))),
        # an hour into the streak: the age milestone
        (StreakSoFar(4, NOW - timedelta(hours=1), 1), RuntimeError("x"),
         (5, SyncStatus.RETRYING, True, NOW - timedelta(hours=1))),
        (StreakSoFar(0, None, 0), NeedsAttentionError("Missing Access", status=403),
         (1, SyncStatus.NEEDS_ATTENTION, True, NOW)),
    ],
)
def test_decide_failure(streak: StreakSoFar, exc: Exception,
                        expected: tuple[int, SyncStatus, bool, datetime]) -> None:
    decision = decide_failure(streak, classify_exception(exc), now=NOW, backoff=2.0,
                              time_scale=1.0, milestones=MILESTONES)
    assert (decision.attempt, decision.status, decision.report_to_sentry,
            decision.failing_since) == expected
    assert decision.next_attempt_at == NOW + timedelta(seconds=2)


def test_decide_failure_honours_a_longer_retry_after() -> None:
    decision = decide_failure(StreakSoFar(0, None, 0),
                              classify_exception(RateLimitedError("429", retry_after=45)),
                              now=NOW, backoff=1.3, time_scale=1.0, milestones=MILESTONES)
    assert decision.delay == 45
    assert decision.next_attempt_at == NOW + timedelta(seconds=45)
