"""One word per service for operators: ``healthy``, ``rate_limited``, ``circuit_open``,
``paused`` or ``credentials_rejected``, each with since when, the reason in the service's
words, the next probe and (for a rejection) the setting to fix.

Pure: it reads one entry of the overview's ``services`` list, which already holds what
every process agrees on (the service's row: pause and credentials; the active daemon's
heartbeat: breaker and rate limits). The strongest state wins, as in ``waiting``: the one
that has to end before the service's keys can run. A 429 only ever reads
``rate_limited``: it slows a service down and never rejects it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from core.admin.waiting import parse_time


class State(StrEnum):
    HEALTHY = "healthy"
    RATE_LIMITED = "rate_limited"
    CIRCUIT_OPEN = "circuit_open"
    PAUSED = "paused"
    CREDENTIALS_REJECTED = "credentials_rejected"


def service_state(entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    credentials = entry.get("credentials") or {}
    if credentials.get("rejected") is not None:
        return _state(State.CREDENTIALS_REJECTED, credentials.get("since"),
                      credentials["rejected"], credentials.get("next_probe_at"),
                      credentials.get("variable"))
    if entry.get("paused"):
        return _state(State.PAUSED, entry.get("paused_at"),
                      entry.get("paused_reason") or "paused by an operator", None)
    breaker = entry.get("breaker") or {}
    if breaker.get("state") in ("open", "half_open"):
        failures = breaker.get("consecutive_failures")
        why = "circuit open after repeated failures" + (
            f" ({failures} in a row)" if failures else "")
        return _state(State.CIRCUIT_OPEN, None, why, breaker.get("half_open_at"))
    limited = [parse_time(lane.get("limited_until")) for lane in entry.get("rate_limits", [])]
    until = max((t for t in limited if t is not None and t > now), default=None)
    if until is not None:
        return _state(State.RATE_LIMITED, None, "the service asked us to wait (429)",
                      until.isoformat())
    return _state(State.HEALTHY, credentials.get("healthy_since"), None, None)


def _state(state: State, since: Any, reason: str | None, next_probe_at: Any,
           variable: str | None = None) -> dict[str, Any]:
    return {"state": state.value, "since": _iso(since), "reason": reason,
            "next_probe_at": _iso(next_probe_at), "variable": variable}


def _iso(value: Any) -> str | None:
    parsed = parse_time(value)
    return parsed.isoformat() if parsed else None
