"""Reporting drift: one log line per repair (group, service, found, done) and counters."""

from __future__ import annotations

from dataclasses import dataclass

from core.observability import get_logger

log = get_logger("groupsync.drift")


@dataclass(frozen=True)
class DriftItem:
    """One difference found behind our back, and what a sync does (or did) about it."""

    group_id: int
    service: str
    subject: str  # which overwrite, role or event
    found: str
    done: str
    repairable: bool = True  # False: a sync cannot put it right (a deleted channel)


def report_repair(item: DriftItem) -> None:
    # Imported here: prometheus_client is a slice of every CLI verb's start, and only a
    # repair (in a process that exports metrics) counts one.
    from core.metrics import DRIFT_FOUND, DRIFT_REPAIRED

    DRIFT_FOUND.labels(item.service, item.found).inc()
    DRIFT_REPAIRED.labels(item.service, item.done).inc()
    log.info(
        "drift_repaired",
        group_id=item.group_id,
        service=item.service,
        subject=item.subject,
        found=item.found,
        done=item.done,
    )
