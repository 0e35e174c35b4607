"""A missing target waits at the backoff cap from its first failure and needs attention;
other failures keep the exponential backoff from 1 s."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.engine.running.backoff import backoff_seconds
from core.engine.running.outcomes import (
    Milestones,
    StreakSoFar,
    backoff_attempt,
    classify_exception,
    decide_failure,
)
from core.errors import MissingTargetError, NeedsAttentionError, TransientError

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def missing() -> MissingTargetError:
    return MissingTargetError("gone", service="discord", target="channel", target_id="1",
                              found="channel deleted", setting="groups.discord_text_channel_id")


@pytest.mark.parametrize(("error", "attempt", "seconds"), [
    (missing(), 0, 60.0),
    (missing(), 3, 60.0),
    (missing(), 20, 60.0),
    (NeedsAttentionError("401"), 0, 1.0),
    (TransientError("503"), 0, 1.0),
    (TransientError("503"), 3, 8.0),
])
def test_the_backoff_step_a_failure_waits(error: Exception, attempt: int, seconds: float) -> None:
    assert backoff_seconds(backoff_attempt(classify_exception(error), attempt)) == seconds


def test_a_missing_target_needs_attention_with_its_own_kind() -> None:
    outcome = classify_exception(missing())
    decision = decide_failure(StreakSoFar(0, None, 0), outcome, now=NOW, backoff=60.0,
                              time_scale=0.01, milestones=Milestones((), ()))

    assert outcome.error_kind == "missing_target"
    assert decision.status == "needs_attention"
    assert decision.delay == pytest.approx(0.6)
