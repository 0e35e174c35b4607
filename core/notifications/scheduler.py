"""The public retry functions and the one process-wide scheduler handle (DESIGN §2).

``_scheduler`` is None until a daemon, an embedded runtime (``core.embed``) or the
application itself puts an APScheduler 3 scheduler there (any kind: AsyncIOScheduler,
BackgroundScheduler …). ``schedule_sync_retry`` adds the documented ``date`` job to it;
the job function, referenced by name with plain-value kwargs, hands the key to the
runtime running in this process (``current_runtime``, read from the process slot
``core.process.slot.SLOT``), or, when there is none, marks it owed for the daemon.
``_scheduler`` holds a scheduler, never a runtime: the runtime is found only through the
slot, which ``installed(runtime, scheduler)`` fills (and publishes ``scheduler`` as
``_scheduler`` when the application has put none there).

APScheduler 3 traps (DESIGN §6a) and how they are handled here:
- a ``date`` job is deleted when handed to the executor: the sync-state row, not the
  job, is the record of what is owed, and a starting daemon re-arms from the rows;
- ``misfire_grace_time`` is None so a late retry still runs;
- ``max_instances``: the job function only hands the run to the engine and returns at
  once, so a retry that fires while the previous one is still running is never dropped;
- the job function is a plain function: every executor can run it (a thread pool
  would only create, never await, a coroutine); it submits the run to the runtime's loop;
- the daemon's job store is in memory: nothing is pickled, the rows are the one source
  of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import BaseScheduler

from core.clock import SystemClock
from core.engine.running import runner
from core.engine.running.backoff import retry_delay, scaled_delay
from core.engine.running.context import Runtime
from core.engine.running.state import SyncKey
from core.observability import get_logger
from core.process import handoff
from core.process.slot import SLOT as slot
from core.validation import optional_group_id, parse_sync_type, require_group_id

log = get_logger("groupsync.scheduler")

RETRY_JOB_FUNC = "core.notifications.scheduler:run_sync_retry"
T = TypeVar("T")


def add_retry_job(
    scheduler: BaseScheduler,
    key: SyncKey,
    run_at: datetime,
    attempt: int,
    previous_group_id: int | None = None,
) -> None:
    """The documented retry job: one pending timer per key, a newer one replaces it."""
    scheduler.add_job(
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
            "sync_type": key.sync_type,
            "group_id": key.group_id,
            "attempt": attempt,
            "previous_group_id": previous_group_id,
        },
    )


def remove_retry_job(scheduler: BaseScheduler, key: SyncKey) -> None:
    with contextlib.suppress(JobLookupError):
        scheduler.remove_job(key.job_id)


class SchedulerRetryTimers:
    """The engine's ``RetryTimers`` over any APScheduler 3 scheduler."""

    def __init__(self, scheduler: BaseScheduler) -> None:
        self.scheduler = scheduler

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def arm_retry(
        self, key: SyncKey, run_at: datetime, attempt: int, previous_group_id: int | None = None
    ) -> None:
        add_retry_job(self.scheduler, key, run_at, attempt, previous_group_id)

    def cancel_retry(self, key: SyncKey) -> None:
        remove_retry_job(self.scheduler, key)


class SyncScheduler(AsyncIOScheduler):
    """The runtime's own AsyncIOScheduler (in-memory store, UTC)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(jobstores={"default": MemoryJobStore()}, timezone=UTC, **options)

    def arm_retry(
        self, key: SyncKey, run_at: datetime, attempt: int, previous_group_id: int | None = None
    ) -> None:
        add_retry_job(self, key, run_at, attempt, previous_group_id)

    def cancel_retry(self, key: SyncKey) -> None:
        remove_retry_job(self, key)


_scheduler: BaseScheduler | None = None


def current_scheduler() -> BaseScheduler | None:
    """The scheduler this process's public functions use (the only read of ``_scheduler``)."""
    return _scheduler


@contextmanager
def installed(runtime: Runtime, scheduler: BaseScheduler | None = None) -> Iterator[Runtime]:
    """The process slot's ``installed(runtime)`` (``core.process.slot``), plus the public
    handle: ``scheduler`` becomes ``_scheduler`` for the block unless the application put
    its own there (which is kept). Both are undone on exit, even on error."""
    global _scheduler
    with slot.installed(runtime):
        assign = scheduler is not None and _scheduler is None
        if assign:
            _scheduler = scheduler
        try:
            yield runtime
        finally:
            if assign and _scheduler is scheduler:
                _scheduler = None


def current_runtime() -> Runtime | None:
    """The runtime running in this process, or None (then public calls hand off)."""
    return slot.runtime()


async def on_runtime_loop(runtime: Runtime, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on the runtime's own loop (its connections and tasks live there),
    also when the caller runs another loop (a worker thread's ``asyncio.run``)."""
    loop = slot.loop_of(runtime)
    if loop is None or loop is asyncio.get_running_loop():
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


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
    (scaled by the running runtime's TIME_SCALE), or later when the service asked for
    ``retry_after`` seconds. The job's kwargs carry attempt + 1. A timer already armed
    for the key later than that stays (pending retries never stack, and a new request
    never shortens a failure streak's backoff). Without a running scheduler: a warning,
    nothing else (the sync-state row still says the sync is owed)."""
    key = SyncKey(parse_sync_type(sync_type), require_group_id(group_id))
    previous_group_id = optional_group_id(previous_group_id)
    delay = get_retry_delay(attempt)  # validates attempt
    scheduler = current_scheduler()
    if scheduler is None or not scheduler.running:
        log.warning("retry_not_scheduled", reason="no scheduler running in this process",
                    sync_type=key.sync_type, group_id=key.group_id, attempt=attempt)
        return
    runtime = current_runtime()
    scale = runtime.time_scale.factor if runtime is not None else 1.0
    now = runtime.clock.now() if runtime is not None else SystemClock().now()
    run_at = now + timedelta(seconds=scaled_delay(delay, scale, retry_after))
    armed = scheduler.get_job(key.job_id)
    if armed is not None and armed.next_run_time is not None and armed.next_run_time > run_at:
        # The engine armed this key further out (its failure streak, or a service's
        # Retry-After): a caller's attempt-0 retry must not shorten it. One timer per key.
        log.debug("retry_already_armed", sync_type=key.sync_type, group_id=key.group_id,
                 attempt=attempt, next_attempt_at=armed.next_run_time.isoformat())
        return
    add_retry_job(scheduler, key, run_at, attempt + 1, previous_group_id)


def run_sync_retry(
    sync_type: str, group_id: int, attempt: int, previous_group_id: int | None = None
) -> None:
    """The retry job: hand the key to this process's runtime and return at once (see
    max_instances above); with no runtime here, mark it owed for the daemon. ``attempt``
    is informational; the row's attempt count is the one that counts."""
    key = SyncKey(parse_sync_type(sync_type), require_group_id(group_id))
    installed = slot.current()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if installed is None or installed.loop.is_closed():
        coro = handoff.hand_off([key.group_id], [key.sync_type], reason="retry")
        if running is not None:
            slot.keep(running.create_task(coro))
        else:
            asyncio.run(coro)
        return
    start = _start_run(installed.runtime, key)
    if running is installed.loop:
        slot.keep(running.create_task(start))
    else:
        asyncio.run_coroutine_threadsafe(start, installed.loop)


async def _start_run(runtime: Runtime, key: SyncKey) -> None:
    runtime.coordinator.spawn(runner.run_key_quietly(runtime, key, reason="retry"))
