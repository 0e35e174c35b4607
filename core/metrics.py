"""Process-wide Prometheus instruments (served at the admin API's /metrics).

Counters and histograms count what this process did; gauges that must agree with the
database (keys per status, reminders, bulk progress) are read from the rows at scrape
time by ``core.admin.api.metrics`` instead. One registry of our own, so tests and an
embedding application's default registry do not collide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.history.tally import TALLY

REGISTRY = CollectorRegistry(auto_describe=True)

SYNC_ATTEMPTS = Counter(
    "groupsync_sync_attempts",
    "Finished sync runs by sync type and outcome (ok, or the failure kind).",
    ["sync_type", "outcome"],
    registry=REGISTRY,
)
SYNC_DURATION = Histogram(
    "groupsync_sync_duration_seconds",
    "Wall time of one sync run, lease claim to record.",
    ["sync_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
EXTERNAL_CALLS = Counter(
    "groupsync_external_calls",
    "HTTP responses from external services by service and status code "
    "('error' when no response came).",
    ["service", "status_code"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "groupsync_rate_limited_responses",
    "Rate-limit answers from external services: 429s, and Google's quota 403s.",
    ["service"],
    registry=REGISTRY,
)

CREDENTIALS_REJECTED = Counter(
    "groupsync_credentials_rejected",
    "Streaks of a service rejecting groupsync's credentials (one per streak, not per key).",
    ["service"],
    registry=REGISTRY,
)


def external_call(service: str, status: int | str, rate_limited: bool = False) -> None:
    """One answer (or a failure to get one) from an external service. ``rate_limited``:
    the answer refused for quota whatever its status (Google sends quota 403s)."""
    EXTERNAL_CALLS.labels(service=service, status_code=str(status)).inc()
    TALLY.add("calls", f"{service}:{status}")
    if status == 429 or rate_limited:
        RATE_LIMITED.labels(service=service).inc()


def rate_limit_wait(service: str, lane: str) -> None:
    """A call waited for the client's rate-limit bucket or a server pause."""
    TALLY.add("rate_limit_waits", f"{service}:{lane}")


def sync_finished(sync_type: str, outcome: str, duration_seconds: float) -> None:
    SYNC_ATTEMPTS.labels(sync_type=sync_type, outcome=outcome).inc()
    SYNC_DURATION.labels(sync_type=sync_type).observe(duration_seconds)


# ---- drift (live reconciliation) ---------------------------------------------------------------
DRIFT_FOUND = Counter(
    "groupsync_drift_found",
    "Differences found between what groupsync applied and what the external service holds.",
    ["service", "found"],
    registry=REGISTRY,
)
DRIFT_REPAIRED = Counter(
    "groupsync_drift_repaired",
    "Drift put right by a sync (a retry, a membership change or the drift sweep).",
    ["service", "done"],
    registry=REGISTRY,
)
DRIFT_SWEEP_GROUPS = Counter(
    "groupsync_drift_sweep_groups",
    "Groups the drift sweep reconciled against the live services.",
    ["service"],
    registry=REGISTRY,
)


# ---- the Discord gateway (core/clients/discord_gateway.py) -------------------------------------
GATEWAY_CONNECTED = Gauge(
    "groupsync_discord_gateway_connected",
    "1 while the Discord gateway is connected and its cache current (syncs read from it).",
    registry=REGISTRY,
)
GATEWAY_LATENCY = Gauge(
    "groupsync_discord_gateway_latency_seconds",
    "The gateway's last heartbeat → ACK time (NaN while not connected).",
    registry=REGISTRY,
)
GATEWAY_CACHE_AGE = Gauge(
    "groupsync_discord_gateway_cache_age_seconds",
    "Seconds since the gateway last sent anything into the channel cache (NaN: nothing yet).",
    registry=REGISTRY,
)
GATEWAY_RESUMES = Counter(
    "groupsync_discord_gateway_resumes",
    "Gateway sessions resumed after a dropped connection.",
    registry=REGISTRY,
)
GATEWAY_IDENTIFIES = Counter(
    "groupsync_discord_gateway_identifies",
    "Gateway IDENTIFYs sent: the first of each link, and one per session Discord invalidated.",
    registry=REGISTRY,
)
CHANNEL_READS = Counter(
    "groupsync_discord_channel_reads",
    "Channel overwrite reads by the Discord sync, by source (gateway cache or REST).",
    ["source"],
    registry=REGISTRY,
)


CALENDAR_LISTED = Gauge(
    "groupsync_calendar_changes_listed_timestamp_seconds",
    "When each followed calendar's incremental list was last applied (Unix time; its lag "
    "is time() minus this).",
    ["calendar_id"],
    registry=REGISTRY,
)


def watch_gateway(status: Callable[[], Any] | None) -> None:
    """The gateway gauges read ``status`` (a GatewayStatus; not imported: the gateway
    imports this module) at scrape time (None: no link in this process)."""
    nan = float("nan")

    def field(pick: Callable[[Any], float | None]) -> Callable[[], float]:
        def read() -> float:
            if status is None:
                return nan
            value = pick(status())
            return nan if value is None else float(value)
        return read

    GATEWAY_CONNECTED.set_function(
        field(lambda s: 1.0 if s.state == "connected" else 0.0) if status else lambda: 0.0)
    GATEWAY_LATENCY.set_function(field(lambda s: s.latency))
    GATEWAY_CACHE_AGE.set_function(field(lambda s: s.cache_age))
