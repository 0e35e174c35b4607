"""/metrics: process counters (core.metrics) plus gauges read from the rows at scrape
time, so what Prometheus sees agrees with the database and with /api/overview."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from core import metrics
from core.admin.bulk import list_jobs
from core.admin.service import AdminService
from core.admin.service_states import State
from core.db.models import CalendarSyncToken, ReminderDelivery
from core.syncers import types

BREAKER_STATES = ("closed", "half_open", "open")


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


async def _reminders(service: AdminService) -> dict[str, int]:
    async with service.session_factory() as session:
        rows = await session.execute(
            select(ReminderDelivery.status, func.count()).group_by(ReminderDelivery.status))
        return {status: int(n) for status, n in rows}


async def snapshot_families(service: AdminService) -> list[Metric]:
    view = await service.overview()
    keys = GaugeMetricFamily("groupsync_sync_keys", "Sync keys by sync type, service and status.",
                             labels=["sync_type", "service", "status"])
    services = {spec.name: spec.service or "none" for spec in types.registered()}
    for sync_type, counts in sorted(view["sync_types"].items()):
        for status, n in sorted(counts.items()):
            keys.add_metric([sync_type, services.get(sync_type, "none"), status], n)
    service_families = _service_families(view["services"])
    reminders = GaugeMetricFamily("groupsync_reminders",
                                  "Reminder deliveries by status (sent, skipped = missed, ...).",
                                  labels=["status"])
    for status, n in sorted((await _reminders(service)).items()):
        reminders.add_metric([status], n)
    bulk = GaugeMetricFamily("groupsync_bulk_job_items", "Items of recent bulk jobs by state.",
                             labels=["job_id", "state"])
    for job in await list_jobs(service.session_factory, limit=10):
        for state in ("done", "failed", "remaining", "cancelled"):
            bulk.add_metric([str(job["id"]), state], job[state])
    return [keys, *service_families, reminders, bulk, _daemon_family(view["daemons"]),
            await _calendar_sync_age(service)]


async def _calendar_sync_age(service: AdminService) -> Metric:
    """How far behind each calendar's incremental sync is: its last applied list's age
    (one tick is CALENDAR_CHANGES_SECONDS; far more says the job fails on that calendar)."""
    age = GaugeMetricFamily("groupsync_calendar_sync_age_seconds",
                            "Seconds since the calendar's changes were last listed and applied.",
                            labels=["calendar_id"])
    now = service.clock.now()
    async with service.session_factory() as session:
        rows = await session.execute(
            select(CalendarSyncToken.calendar_id, CalendarSyncToken.synced_at))
        for calendar_id, synced_at in rows:
            age.add_metric([calendar_id], max(0.0, (now - synced_at).total_seconds()))
    return age


def _service_families(services: list[dict[str, Any]]) -> list[Metric]:
    paused = GaugeMetricFamily("groupsync_service_paused", "1 while an operator paused it.",
                               labels=["service"])
    breaker = GaugeMetricFamily("groupsync_circuit_breaker_state",
                                "1 for the breaker's current state (from the active daemon).",
                                labels=["service", "state"])
    remaining = GaugeMetricFamily("groupsync_rate_limit_remaining",
                                  "Calls the client-side limit allows now, per lane.",
                                  labels=["service", "lane"])
    invalid = GaugeMetricFamily("groupsync_discord_invalid_requests",
                                "401/403/429 answers in the current 10-minute window.",
                                labels=["service", "budget"])
    health = GaugeMetricFamily("groupsync_service_state",
                               "1 for the service's state (healthy, rate_limited, circuit_open, "
                               "paused, credentials_rejected), 0 for the others.",
                               labels=["service", "state"])
    for entry in services:
        name = entry["name"]
        current = (entry.get("state") or {}).get("state")
        for each in State:
            health.add_metric([name, each.value], 1.0 if each == current else 0.0)
        paused.add_metric([name], 1.0 if entry["paused"] else 0.0)
        state = entry["breaker"].get("state")
        if state in BREAKER_STATES:
            for candidate in BREAKER_STATES:
                breaker.add_metric([name, candidate], 1.0 if candidate == state else 0.0)
        for lane in entry["rate_limits"]:
            if lane.get("remaining") is not None:
                remaining.add_metric([name, lane["lane"]], float(lane["remaining"]))
        used = entry["invalid_requests"].get("used")
        if used is not None:
            invalid.add_metric([name, str(entry["invalid_requests"].get("budget"))], float(used))
    return [health, paused, breaker, remaining, invalid]


def _daemon_family(daemons_seen: list[dict[str, Any]]) -> Metric:
    daemons = GaugeMetricFamily("groupsync_daemons", "Daemons with a fresh heartbeat, by role.",
                                labels=["role"])
    alive: dict[str, int] = {"active": 0, "standby": 0}
    for daemon in daemons_seen:
        if daemon["alive"]:
            alive[daemon["role"]] = alive.get(daemon["role"], 0) + 1
    for role, n in sorted(alive.items()):
        daemons.add_metric([role], n)
    return daemons


async def render(service: AdminService) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await snapshot_families(service)))
    return generate_latest(metrics.REGISTRY) + generate_latest(registry)


def content_type() -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST

    return CONTENT_TYPE_LATEST
