"""What a run's outcome means, and what to record after it: pure decisions, no I/O.

The runner carries these out (row update, retry timer, log line, Sentry report).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.db.models import SyncStatus
from core.engine.running.backoff import CAP_ATTEMPT, scaled_delay
from core.errors import (
    CredentialsRejectedError,
    MissingTargetError,
    NeedsAttentionError,
    TransientError,
)
from core.syncers.base import SyncResult, is_failure


@dataclass(frozen=True)
class Outcome:
    """A run classified: success, or a failure with its message and kind."""

    ok: bool
    result: SyncResult | None = None
    error: str | None = None
    error_kind: str | None = None
    retry_after: float | None = None
    exception: BaseException | None = None

    @property
    def needs_attention(self) -> bool:
        return self.error_kind in NEEDS_ATTENTION_KINDS

    @property
    def missing_target(self) -> bool:
        return self.error_kind == MissingTargetError.kind


# The error kinds a key in status needs_attention was left with (an operator must act).
NEEDS_ATTENTION_KINDS = (NeedsAttentionError.kind, MissingTargetError.kind,
                         CredentialsRejectedError.kind)


def classify_result(result: Any) -> Outcome:
    if not isinstance(result, dict):
        return Outcome(ok=False, error=f"syncer returned {type(result).__name__}, not a dict",
                       error_kind="bad_result")
    if is_failure(result):
        error = result.get("error") or f"{result.get('failed')} item(s) failed"
        return Outcome(ok=False, result=result, error=str(error), error_kind="result")
    return Outcome(ok=True, result=result)


def classify_exception(exc: Exception) -> Outcome:
    kind = getattr(exc, "kind", None) or type(exc).__name__
    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
    message = str(exc) or type(exc).__name__
    return Outcome(ok=False, error=message, error_kind=kind, retry_after=retry_after,
                   exception=exc)


def backoff_attempt(outcome: Outcome, attempt: int) -> int:
    """Which step of the backoff a failure after ``attempt`` failures waits: a missing
    target waits for a person, so it starts at the cap (60 s), not at 1 s."""
    return max(attempt, CAP_ATTEMPT) if outcome.missing_target else attempt


@dataclass(frozen=True)
class StreakSoFar:
    """The failure streak as the row held it when the run was claimed."""

    attempt: int
    failing_since: datetime | None
    sentry_reported_level: int


@dataclass(frozen=True)
class Milestones:
    attempts: tuple[int, ...]
    ages_seconds: tuple[float, ...]  # already multiplied by the time scale


@dataclass(frozen=True)
class FailureDecision:
    attempt: int  # consecutive failures including this one (the row's new value)
    delay: float  # seconds until the retry, scaled, hint applied
    next_attempt_at: datetime
    status: SyncStatus
    failing_since: datetime
    sentry_level: int  # the level to store
    report_to_sentry: bool


def sentry_level(attempt: int, age_seconds: float, milestones: Milestones) -> int:
    """1 for the first failure of a streak, +1 for each milestone the streak has passed."""
    return (
        1
        + sum(attempt >= m for m in milestones.attempts)
        + sum(age_seconds >= m for m in milestones.ages_seconds)
    )


def decide_failure(
    streak: StreakSoFar,
    outcome: Outcome,
    *,
    now: datetime,
    backoff: float,
    time_scale: float,
    milestones: Milestones,
) -> FailureDecision:
    """Row values after a failure. ``backoff`` is get_retry_delay(streak.attempt): the
    jittered production delay for this many failures so far (first failure → 1 s)."""
    failing_since = streak.failing_since or now
    attempt = streak.attempt + 1
    delay = scaled_delay(backoff, time_scale, outcome.retry_after)
    level = sentry_level(attempt, (now - failing_since).total_seconds(), milestones)
    return FailureDecision(
        attempt=attempt,
        delay=delay,
        next_attempt_at=now + timedelta(seconds=delay),
        status=SyncStatus.NEEDS_ATTENTION if outcome.needs_attention else SyncStatus.RETRYING,
        failing_since=failing_since,
        sentry_level=max(level, streak.sentry_reported_level),
        report_to_sentry=level > streak.sentry_reported_level,
    )
