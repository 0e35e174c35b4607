"""Sentry reports for failure streaks: the runner decides when (outcomes.decide_failure),
this module only sends. Without a DSN nothing is built at all: sentry_sdk's own no-op
path still forks a scope and walks the exception, which during an outage of thousands of
keys was a quarter of the process's CPU."""

from __future__ import annotations

import sentry_sdk

from core.engine.running.outcomes import FailureDecision, Outcome
from core.engine.running.state import SyncKey


def report_failure(key: SyncKey, outcome: Outcome, decision: FailureDecision) -> None:
    if not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("sync_type", key.sync_type)
        scope.set_tag("group_id", str(key.group_id))
        scope.set_tag("error_kind", outcome.error_kind or "unknown")
        scope.set_extra("attempt", decision.attempt)
        scope.set_extra("failing_since", decision.failing_since.isoformat())
        scope.set_extra("sentry_level", decision.sentry_level)
        if outcome.exception is not None:
            sentry_sdk.capture_exception(outcome.exception)
        else:
            sentry_sdk.capture_message(
                f"{key.sync_type} sync of group {key.group_id} failed: {outcome.error}",
                level="error",
            )
