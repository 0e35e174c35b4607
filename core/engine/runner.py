"""Run one key: coalesce in-process, claim the lease, call the syncer, record, re-arm.

The pieces: ``state`` owns the row writes, ``outcomes`` decides, the scheduler arms the
timer, ``sentry_reporting`` sends. This module only sequences them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from core.engine import history, state
from core.engine.backoff import retry_delay
from core.engine.fencing import LeaseFence
from core.engine.outcomes import (
    Milestones,
    Outcome,
    classify_exception,
    classify_result,
    decide_failure,
)
from core.engine.sentry_reporting import report_failure
from core.engine.state import Claim, SyncKey
from core.lanes import Lane
from core.observability import get_logger
from core.syncers.base import SyncContext, SyncResult

if TYPE_CHECKING:
    from core.runtime import Runtime

log = get_logger("groupsync.engine")


async def run_key(
    rt: Runtime, key: SyncKey, *, lane: Lane = Lane.INTERACTIVE, reason: str = "request"
) -> SyncResult:
    """Run the key once (or share a queued run) and return its result dict.

    A key whose lease another process holds, or that is no longer owed, is not run: the
    result says ``{"skipped": …}``. A failure is recorded and returned, never raised."""
    async def already_done() -> SyncResult | None:
        if await state.is_owed(rt.session_factory, key):
            return None
        return {"skipped": "up to date"}

    return await rt.coordinator.run(
        key, lambda: _run_once(rt, key, lane, reason), still_needed=already_done
    )


async def run_key_quietly(rt: Runtime, key: SyncKey, *, reason: str) -> None:
    """For timers and the sweep: nobody awaits the result, so nothing may escape."""
    try:
        await run_key(rt, key, reason=reason)
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug in the engine itself: log it, the row still says owed
        log.exception("sync_run_crashed", sync_type=key.sync_type.value, group_id=key.group_id)


async def _run_once(rt: Runtime, key: SyncKey, lane: Lane, reason: str) -> SyncResult:
    if await rt.pauses.is_paused(key.sync_type):
        # An operator paused the service: no call; the key stays owed for the resume.
        log.info("sync_paused", sync_type=key.sync_type.value, group_id=key.group_id)
        return {"skipped": "service paused"}
    async with rt.limiter:
        now = rt.clock.now()
        claim = await state.claim(
            rt.session_factory, key, rt.owner, now, rt.settings.lease_seconds
        )
        if claim is None:
            return {"skipped": "not owed, or running elsewhere"}
        started = time.monotonic()
        fence = LeaseFence(rt.session_factory, claim, rt.clock)
        renewer = asyncio.get_running_loop().create_task(_keep_lease(rt, claim))
        try:
            outcome = await _call_syncer(rt, claim, lane, fence)
        except asyncio.CancelledError:
            # Shutdown: the generation stays owed, the lease goes back.
            renewer.cancel()
            await state.release(rt.session_factory, claim, rt.clock.now())
            log.info("sync_interrupted", sync_type=key.sync_type.value, group_id=key.group_id)
            raise
        finally:
            renewer.cancel()
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        result = await _record(rt, claim, outcome, duration_ms, reason)
        await history.note_run(rt.session_factory, claim, outcome, duration_ms, rt.clock.now())
        return result


async def _call_syncer(rt: Runtime, claim: Claim, lane: Lane, fence: LeaseFence) -> Outcome:
    syncer = rt.syncers[claim.key.sync_type]
    context = SyncContext(
        lane=lane, now=rt.clock.now(), attempt=claim.streak.attempt, fence=fence
    )
    try:
        result = await syncer.sync(claim.key.group_id, context)
    except Exception as exc:
        return classify_exception(exc)
    return classify_result(result)


async def _keep_lease(rt: Runtime, claim: Claim) -> None:
    """Renew the lease at a third of its length for as long as the run lasts."""
    interval = rt.settings.lease_seconds / 3
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(Exception):  # a missed renewal is retried next interval
            await state.renew(rt.session_factory, claim, rt.clock.now(), rt.settings.lease_seconds)


async def _record(
    rt: Runtime, claim: Claim, outcome: Outcome, duration_ms: float, reason: str
) -> SyncResult:
    key, now = claim.key, rt.clock.now()
    fields: dict[str, Any] = {
        "sync_type": key.sync_type.value, "group_id": key.group_id,
        "duration_ms": duration_ms, "reason": reason,
    }
    if outcome.ok:
        kept = await state.record_success(rt.session_factory, claim, outcome, now)
        if rt.scheduler is not None:
            rt.scheduler.cancel_retry(key)
        log.info("sync_succeeded", result=outcome.result, attempt=0,
                 outcome="ok" if kept else "lease_lost", **fields)
        return outcome.result or {}
    decision = decide_failure(
        claim.streak,
        outcome,
        now=now,
        backoff=retry_delay(claim.streak.attempt),
        time_scale=rt.time_scale.factor,
        milestones=Milestones(
            attempts=rt.settings.sentry_attempt_milestones,
            ages_seconds=tuple(
                rt.time_scale.seconds(s) for s in rt.settings.sentry_age_milestones_seconds
            ),
        ),
    )
    kept = await state.record_failure(rt.session_factory, claim, outcome, decision, now)
    if kept:
        _arm(rt, key, decision.next_attempt_at, decision.attempt)
        if decision.report_to_sentry:
            report_failure(key, outcome, decision)
    log.warning(
        "sync_failed",
        attempt=decision.attempt,
        delay=round(decision.delay, 6),
        next_attempt_at=decision.next_attempt_at.isoformat(),
        error=outcome.error,
        error_kind=outcome.error_kind,
        outcome=(decision.status.value if kept else "lease_lost"),
        **fields,
    )
    return outcome.result if outcome.result is not None else {"error": outcome.error}


def _arm(rt: Runtime, key: SyncKey, run_at: Any, attempt: int) -> None:
    if rt.scheduler is None or not rt.scheduler.running:
        log.warning("retry_not_scheduled", reason="no scheduler running in this process",
                    sync_type=key.sync_type.value, group_id=key.group_id, attempt=attempt)
        return
    rt.scheduler.arm_retry(key, run_at, attempt)
