"""The public retry functions and the one process-wide scheduler handle (DESIGN §2).

``_scheduler`` is None until a daemon (or an application embedding groupsync) starts a
``SyncScheduler``; it carries the runtime, so job functions, referenced by name with
plain-value kwargs, find the engine, sessions and syncers at run time.

APScheduler 3 traps (DESIGN §6a) and how they are handled here:
- a ``date`` job is deleted when handed to the executor: the sync-state row, not the
  job, is the record of what is owed, and a starting daemon re-arms from the rows;
- ``misfire_grace_time`` is None so a late retry still runs;
- ``max_instances``: the job function only hands the run to the engine and returns at
  once, so a retry that fires while the previous one is still running is never dropped;
- the job store is in memory: nothing is pickled, the rows are the one source of truth.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.engine.backoff import retry_delay, scaled_delay
from core.engine.state import SyncKey
from core.observability import get_logger
from core.validation import optional_group_id, parse_sync_type, require_group_id

if TYPE_CHECKING:
    from core.runtime import Runtime

log = get_logger("groupsync.scheduler")

RETRY_JOB_FUNC = "core.notifications.scheduler:run_sync_retry"


class SyncScheduler(AsyncIOScheduler):
    """An AsyncIOScheduler that knows the runtime its jobs run against."""

    def __init__(self, runtime: Runtime | None = None, **options: Any) -> None:
        super().__init__(jobstores={"default": MemoryJobStore()}, timezone=UTC, **options)
        self.runtime = runtime

    def arm_retry(
        self, key: SyncKey, run_at: datetime, attempt: int, previous_group_id: int | None = None
    ) -> None:
        """One pending timer per key: a newer retry replaces the older one."""
        self.add_job(
            RETRY_JOB_FUNC,
            trigger="date",
            run_date=run_at,
            id=key.job_id,
            name=key.job_id,
            replace_existing=True,
            misfire_grace_time=None,
            max_instances=1000,
            coalesce=True,
            kwargs={
                "sync_type": key.sync_type.value,
                "group_id": key.group_id,
                "attempt": attempt,
                "previous_group_id": previous_group_id,
            },
        )

    def cancel_retry(self, key: SyncKey) -> None:
        with contextlib.suppress(JobLookupError):
            self.remove_job(key.job_id)


_scheduler: SyncScheduler | None = None


def get_retry_delay(attempt: int, include_jitter: bool = True) -> float:
    """min(2**attempt, 60) seconds, plus uniform jitter in [0, 1) when asked."""
    return retry_delay(attempt, include_jitter=include_jitter)


def schedule_sync_retry(
    sync_type: str,
    group_id: int,
    attempt: int,
    previous_group_id: int | None = None,
    *,
    retry_after: float | None = None,
) -> None:
    """Arm the retry timer ``sync_retry_{type}_{group}`` for now + get_retry_delay(attempt)
    (scaled), or later when the service asked for ``retry_after`` seconds. The job's
    kwargs carry attempt + 1. Without a running scheduler: a warning, nothing else (the
    sync-state row still says the sync is owed)."""
    key = SyncKey(parse_sync_type(sync_type), require_group_id(group_id))
    previous_group_id = optional_group_id(previous_group_id)
    delay = get_retry_delay(attempt)  # validates attempt
    scheduler = _scheduler
    if scheduler is None or not scheduler.running:
        log.warning("retry_not_scheduled", reason="no scheduler running in this process",
                    sync_type=key.sync_type.value, group_id=key.group_id, attempt=attempt)
        return
    scale = scheduler.runtime.time_scale.factor if scheduler.runtime else 1.0
    seconds = scaled_delay(delay, scale, retry_after)
    run_at = scheduler.runtime.clock.now() if scheduler.runtime else _utcnow()
    scheduler.arm_retry(key, run_at + timedelta(seconds=seconds), attempt + 1, previous_group_id)


async def run_sync_retry(
    sync_type: str, group_id: int, attempt: int, previous_group_id: int | None = None
) -> None:
    """The retry job: hand the key to the engine and return (see max_instances above).
    ``attempt`` is informational; the row's attempt count is the one that counts."""
    from core.engine import runner

    scheduler = _scheduler
    if scheduler is None or scheduler.runtime is None:
        log.warning("retry_fired_without_runtime", sync_type=sync_type, group_id=group_id)
        return
    runtime = scheduler.runtime
    key = SyncKey(parse_sync_type(sync_type), require_group_id(group_id))
    runtime.coordinator.spawn(runner.run_key_quietly(runtime, key, reason="retry"))


def _utcnow() -> datetime:
    from core.clock import SystemClock

    return SystemClock().now()
