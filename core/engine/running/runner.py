"""Run one key: coalesce in-process, claim the lease, call the syncer, record, re-arm.

The pieces: ``state`` owns the row writes, ``outcomes`` decides, the scheduler arms the
timer, ``sentry_reporting`` sends. This module only sequences them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.engine.health.outage import is_database_unavailable, reconnect_delay
from core.engine.running import history, state
from core.engine.running.backoff import retry_delay
from core.engine.running.fencing import LeaseFence
from core.engine.running.held import held_plan_done
from core.engine.running.outcomes import (
    Milestones,
    Outcome,
    backoff_attempt,
    classify_exception,
    classify_result,
    decide_failure,
)
from core.engine.running.sentry_reporting import report_failure
from core.engine.running.state import Claim, SyncKey
from core.errors import CircuitOpenError, CredentialsRejectedError, LeaseLostError
from core.lanes import Lane, LaneAsk
from core.observability import get_logger
from core.syncers.base import SyncContext, SyncResult

if TYPE_CHECKING:
    from core.engine.running.context import Runtime

log = get_logger("groupsync.engine")


async def run_key(
    rt: Runtime, key: SyncKey, *, lane: Lane = Lane.INTERACTIVE, reason: str = "request",
    prepare: Callable[[], Awaitable[bool]] | None = None,
) -> SyncResult:
    """Run the key once (or share a queued run) and return its result dict.

    A key whose lease another process holds, or that is no longer owed, is not run: the
    result says ``{"skipped": …}``. A failure is recorded and returned, never raised.
    ``prepare`` runs first, inside the key's coordination (the outbox sweep leaves a key
    it finds busy alone): a bulk retry makes its key due there, so the sweep does not
    run it beside the bulk, as interactive. False from it: nothing to run."""
    async def already_done() -> SyncResult | None:
        if await state.is_owed(rt.session_factory, key):
            return None
        return {"skipped": "up to date"}

    # A run waiting for its slot keeps its lane ask open: an interactive request for a key
    # whose run background work queued raises that run to interactive, so it is not
    # served after the whole background queue (priority inheritance). The caller still
    # queues its own run behind it, which finds the work done.
    ask = rt.lane_asks.setdefault(key, LaneAsk(lane))
    ask.raise_to(lane)
    # The run in flight, too: the caller waits for it to end, so a background run that
    # waits for its tokens (or its slot back) does so in the interactive lane from now
    # on, not behind the rest of the background queue (core/clients/ratelimit.py).
    if (running := rt.running_asks.get(key)) is not None:
        running.raise_to(lane)
    async def run_once() -> SyncResult:
        if prepare is not None and not await prepare():
            return {"skipped": "not owed"}
        return await _run_once(rt, key, ask, reason)

    try:
        return await rt.coordinator.run(key, run_once, still_needed=already_done)
    finally:
        if rt.lane_asks.get(key) is ask and not rt.coordinator.busy(key):
            del rt.lane_asks[key]  # its run never took a slot (done already, or cancelled)



async def run_key_quietly(rt: Runtime, key: SyncKey, *, reason: str) -> None:
    """For timers and the sweep: nobody awaits the result, so nothing may escape."""
    try:
        await run_key(rt, key, reason=reason)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if is_database_unavailable(exc):
            # One line per outage (not per key): the row still says owed, the sweep
            # runs the key once the database is back.
            rt.outage.failed(exc, where="run")
            return
        # A bug in the engine itself: log it, the row still says owed.
        log.exception("sync_run_crashed", sync_type=key.sync_type, group_id=key.group_id)


async def _run_once(rt: Runtime, key: SyncKey, ask: LaneAsk, reason: str) -> SyncResult:
    if await rt.pauses.is_paused(key.sync_type):
        # An operator paused the service: no call; the key stays owed for the resume.
        log.info("sync_paused", sync_type=key.sync_type, group_id=key.group_id)
        return {"skipped": "service paused"}
    if (parked := await _rejected(rt, key) or _parked(rt, key)) is not None:
        return parked
    async with rt.limiter.hold(ask):
        lane = ask.lane  # as owed when the slot was given: raised, maybe, while it waited
        if rt.lane_asks.get(key) is ask:
            del rt.lane_asks[key]  # later callers' asks are for the run after this one
        rt.running_asks[key] = ask  # ... and raise this one, which they wait for
        try:
            return await _admitted_run(rt, key, lane, reason)
        finally:
            if rt.running_asks.get(key) is ask:
                del rt.running_asks[key]


async def _admitted_run(rt: Runtime, key: SyncKey, lane: Lane, reason: str) -> SyncResult:
    if (parked := await _rejected(rt, key)) is not None:
        return parked  # rejected while this run waited for its slot: no claim either
    # Parked while this run waited? And while the breaker is half-open, only the run
    # admitted as the probe goes on; the others wait in their rows for its outcome.
    admission = rt.parking.admit(key.sync_type, time.monotonic(), rt.client_board.statuses())
    if admission.wait > 0.0:
        return _parked_result(rt, key, admission.wait)
    try:
        return await _claim_and_run(rt, key, lane, reason)
    finally:
        if admission.probe:
            rt.parking.probe_ended(key.sync_type)


async def _claim_and_run(rt: Runtime, key: SyncKey, lane: Lane, reason: str) -> SyncResult:
    now = rt.clock.now()
    claim = await state.claim(
        rt.session_factory, key, rt.owner, now, rt.settings.lease_seconds
    )
    if claim is None:
        return {"skipped": "not owed, or running elsewhere"}
    started = time.monotonic()
    fence = LeaseFence(rt.session_factory, claim, rt.clock)
    loop = asyncio.get_running_loop()
    recording = asyncio.Event()
    work = loop.create_task(_call_syncer(rt, claim, lane, fence))
    renewer = loop.create_task(_keep_lease(rt, claim, fence, work, recording))
    try:
        outcome = await _outcome_of(work)
        if outcome is None or fence.lost or outcome.error_kind == LeaseLostError.kind:
            return _lost(claim, reason)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        # The renewer keeps the lease alive while the outcome is written (the write
        # itself is fenced, and gives the lease back when it succeeds).
        recording.set()
        finished = rt.clock.now()  # the history row's and the rollups' minute alike
        result = await _record(rt, claim, fence, outcome, duration_ms, reason, finished)
        history.note_run(claim, outcome, duration_ms, finished)
        return result
    except asyncio.CancelledError:
        await _abandon(rt, claim, fence, work)
        raise
    finally:
        renewer.cancel()


async def _outcome_of(work: asyncio.Task[Outcome]) -> Outcome | None:
    """The syncer's outcome, or None when the renewer cancelled it (lease lost). A
    cancellation of our own caller still propagates (asyncio.wait raises it)."""
    await asyncio.wait({work})
    return None if work.cancelled() else work.result()


async def _abandon(rt: Runtime, claim: Claim, fence: LeaseFence, work: asyncio.Task[Any]) -> None:
    """Shutdown or leadership loss: stop the syncer, then give the lease back (unless it
    is already lost) so the key, still owed, runs elsewhere without waiting it out."""
    key = claim.key
    if not work.cancelling():
        # Once only: a second cancel reaching a syncer whose session is closing its
        # connection after the first (the renewer's) makes SQLAlchemy force-close the
        # aiosqlite connection, which leaves a close pending forever.
        work.cancel()
    await asyncio.wait({work}, timeout=5)
    if not fence.lost:
        fence.mark_lost()
        try:
            await state.release(rt.session_factory, claim, rt.clock.now())
        except Exception as exc:  # unreachable database: the lease expires by itself
            if is_database_unavailable(exc):
                rt.outage.failed(exc, where="release")
            else:
                log.warning("lease_not_released", sync_type=key.sync_type,
                            group_id=key.group_id, error=str(exc)[:300])
    log.info("sync_interrupted", sync_type=key.sync_type, group_id=key.group_id)


def _lost(claim: Claim, reason: str) -> SyncResult:
    """A run that lost its lease records nothing: the key stays owed for whoever holds
    the lease now (or for the next claim once it has expired)."""
    key = claim.key
    log.warning("sync_lease_lost", sync_type=key.sync_type, group_id=key.group_id,
                reason=reason, outcome="lease_lost", keys_remain="owed")
    return {"error": "lease lost before the run finished; the key stays owed",
            "lease_lost": True}


def _parked(rt: Runtime, key: SyncKey) -> SyncResult | None:
    """The service's circuit is open: no claim, no record, the row stays owed (parking)."""
    wait = rt.parking.parked_for(key.sync_type, time.monotonic(), rt.client_board.statuses())
    return None if wait <= 0.0 else _parked_result(rt, key, wait)


async def _rejected(rt: Runtime, key: SyncKey) -> SyncResult | None:
    """The service rejected the credentials: no claim, no record, the row stays owed."""
    rejection = await rt.credentials.parked(key.sync_type)
    if rejection is None:
        return None
    return {"error": rejection.detail(), "parked": CredentialsRejectedError.kind}


def _parked_result(rt: Runtime, key: SyncKey, wait: float) -> SyncResult:
    return {"error": rt.parking.reason(key.sync_type, wait), "parked_seconds": round(wait, 3)}


async def _call_syncer(rt: Runtime, claim: Claim, lane: Lane, fence: LeaseFence) -> Outcome:
    syncer = rt.syncers[claim.key.sync_type]
    context = SyncContext(
        lane=lane, now=rt.clock.now(), attempt=claim.streak.attempt, fence=fence,
        guard=rt.guard,
    )
    try:
        result = await syncer.sync(claim.key.group_id, context)
    except Exception as exc:
        return classify_exception(exc)
    return classify_result(result)


async def _keep_lease(
    rt: Runtime,
    claim: Claim,
    fence: LeaseFence,
    work: asyncio.Task[Any],
    recording: asyncio.Event,
) -> None:
    """Renew the lease every third of its length while the run lasts.

    A renewal the database refuses (the lease expired or passed to another process), or
    one that cannot be confirmed before two thirds of the lease have gone by (the
    database is unreachable), marks the fence lost and cancels the syncer: it makes no
    further external call, and the last third of the lease is the margin in which a call
    already sent may still land before anyone else may claim the key."""
    loop = asyncio.get_running_loop()
    lease = rt.settings.lease_seconds
    interval = lease / 3
    held_until = loop.time() + lease  # conservative: the claim was written before now
    renew_at = loop.time() + interval
    key = claim.key
    while True:
        await asyncio.sleep(max(renew_at - loop.time(), 0.0))
        asked = loop.time()
        deadline = held_until - interval
        try:
            held = await asyncio.wait_for(
                state.renew(rt.session_factory, claim, rt.clock.now(), lease),
                timeout=max(deadline - asked, 0.001),
            )
        except Exception:
            # Not reported as an outage from here: a renewal slower than its deadline
            # may only mean a loaded database; the sweep and leadership loops report.
            if loop.time() < deadline:
                renew_at = loop.time() + min(interval / 3, 1.0)  # try again soon
                continue
            why = "renewal not confirmed before the lease ran out"
        else:
            if held:
                held_until, renew_at = asked + lease, asked + interval
                continue
            if recording.is_set():
                # The outcome's own fenced write gave the lease back (or will find it
                # gone): nothing left to stop, nothing to report.
                renew_at = asked + interval
                continue
            why = "renewal refused: the lease expired or another process holds it"
        fence.mark_lost()
        work.cancel()
        log.warning("lease_lost", sync_type=key.sync_type, group_id=key.group_id,
                    reason=why)
        return


async def _persist(
    rt: Runtime, fence: LeaseFence, write: Callable[[datetime], Awaitable[bool]]
) -> bool:
    """Write the outcome, riding out a database outage for as long as the lease is
    still held (the renewer decides that); False when the lease is gone."""
    attempt = 0
    while not fence.lost:
        try:
            kept = await write(rt.clock.now())
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            rt.outage.failed(exc, where="record")
            await asyncio.sleep(reconnect_delay(attempt, rt.time_scale.factor))
            attempt += 1
            continue
        return kept
    return False


async def _record(
    rt: Runtime, claim: Claim, fence: LeaseFence, outcome: Outcome, duration_ms: float,
    reason: str, finished: datetime,
) -> SyncResult:
    key, now = claim.key, rt.clock.now()
    fields: dict[str, Any] = {
        "sync_type": key.sync_type, "group_id": key.group_id,
        "duration_ms": duration_ms, "reason": reason,
    }
    def rows(_at: datetime) -> Any:  # the history row, in the record's own transaction
        return history.run_rows(claim, outcome, duration_ms, finished)

    if outcome.ok and (outcome.result or {}).get("held"):
        return await _record_held(rt, claim, fence, outcome, fields, rows)
    if claim.recheck and not outcome.ok and outcome.error_kind != (
        CredentialsRejectedError.kind
    ):
        return await _recheck_failed(rt, claim, fence, outcome, fields, rows)
    if outcome.error_kind == CredentialsRejectedError.kind and isinstance(
        outcome.exception, CredentialsRejectedError
    ) and not await rt.credentials.rejected(outcome.exception, key, now):
        # Another run began this streak and is its one record: this key stays owed as it
        # was (lease given back, no attempt counted), parked with its service.
        await _persist(rt, fence, lambda at: state.release(rt.session_factory, claim, at, rows(at)))
        log.info("sync_parked", outcome=CredentialsRejectedError.kind, **fields)
        return {"error": outcome.error, "parked": CredentialsRejectedError.kind}
    if outcome.ok:
        return await _record_success(rt, claim, fence, outcome, fields, rows)
    decision = decide_failure(
        claim.streak,
        outcome,
        now=now,
        backoff=retry_delay(backoff_attempt(outcome, claim.streak.attempt)),
        time_scale=rt.time_scale.factor,
        milestones=Milestones(
            attempts=rt.settings.sentry_attempt_milestones,
            ages_seconds=tuple(
                rt.time_scale.seconds(s) for s in rt.settings.sentry_age_milestones_seconds
            ),
        ),
    )
    if outcome.error_kind == CircuitOpenError.kind and outcome.retry_after:
        rt.parking.park(key.sync_type, time.monotonic(), outcome.retry_after, outcome.error or "")
    kept = await _persist(
        rt,
        fence,
        lambda at: state.record_failure(
            rt.session_factory, claim, outcome, decision, at, rows(at)),
    )
    if kept:
        _arm(rt, key, decision.next_attempt_at, decision.attempt)
        if decision.report_to_sentry and outcome.error_kind != CredentialsRejectedError.kind:
            report_failure(key, outcome, decision)  # a rejection: once per streak, the watch
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


async def _record_success(
    rt: Runtime, claim: Claim, fence: LeaseFence, outcome: Outcome, fields: dict[str, Any],
    rows: Callable[[datetime], Any],
) -> SyncResult:
    key = claim.key
    rt.parking.unpark(key.sync_type)
    # A key that was held (or failing: a held key's new plan may have failed first) and
    # now succeeded without a hold: whatever plan of it was held is done, in the success's
    # own transaction (a reader, or a crash, never finds the key ok with its plan still
    # held). Not asked of a key that was fine, so a healthy run costs no statement more.
    settles = rt.guard is not None and (claim.held is not None or claim.streak.attempt > 0)
    done = held_plan_done(key) if settles else ()
    kept = await _persist(
        rt, fence,
        lambda at: state.record_success(rt.session_factory, claim, outcome, at,
                                        (*rows(at), *done)),
    )
    if rt.scheduler is not None:
        rt.scheduler.cancel_retry(key)
    log.info("sync_succeeded", result=outcome.result, attempt=0,
             outcome="ok" if kept else "lease_lost", **fields)
    return outcome.result or {}


async def _record_held(
    rt: Runtime, claim: Claim, fence: LeaseFence, outcome: Outcome, fields: dict[str, Any],
    rows: Callable[[datetime], Any],
) -> SyncResult:
    """The deletion guard held the plan: nothing was written outside. The key stays owed
    in status ``held`` with no retry timer (a person decides, not a backoff); a membership
    change or an operator's decision runs it again."""
    result = outcome.result or {}
    reason = str(result.get("held") or "held by the deletion guard")
    recheck_at = _recheck_at(rt)
    kept = await _persist(rt, fence, lambda at: state.record_held(
        rt.session_factory, claim, reason, at, recheck_at, rows(at), result=outcome.result))
    if kept:
        _arm(rt, claim.key, recheck_at, 0)
    log.warning("sync_held", held=result.get("held"), removals=result.get("removals"),
                members=result.get("members"), attempt=0, recheck_at=recheck_at.isoformat(),
                outcome="held" if kept else "lease_lost", **fields)
    return result


async def _recheck_failed(
    rt: Runtime, claim: Claim, fence: LeaseFence, outcome: Outcome, fields: dict[str, Any],
    rows: Callable[[datetime], Any],
) -> SyncResult:
    """A held key's re-check could not re-plan (the live read failed, the circuit is
    open, …): the key stays held for the operator with its plan, not a retrying key (a
    failed re-read must not take a hold out of the held view), and is re-checked later."""
    assert claim.held is not None
    recheck_at = _recheck_at(rt)
    kept = await _persist(rt, fence, lambda at: state.record_held(
        rt.session_factory, claim, claim.held or "", at, recheck_at, rows(at)))
    if kept:
        _arm(rt, claim.key, recheck_at, 0)
    log.warning("held_recheck_failed", error=outcome.error, error_kind=outcome.error_kind,
                recheck_at=recheck_at.isoformat(),
                outcome="held" if kept else "lease_lost", **fields)
    return {"held": claim.held, "error": outcome.error}


def _recheck_at(rt: Runtime) -> datetime:
    """When a held key is next re-planned against the live state (HELD_RECHECK_SECONDS)."""
    return rt.clock.now() + timedelta(seconds=rt.time_scale.seconds(
        rt.settings.held_recheck_seconds))


def _arm(rt: Runtime, key: SyncKey, run_at: Any, attempt: int) -> None:
    if rt.scheduler is None or not rt.scheduler.running:
        log.warning("retry_not_scheduled", reason="no scheduler running in this process",
                    sync_type=key.sync_type, group_id=key.group_id, attempt=attempt)
        return
    rt.scheduler.arm_retry(key, run_at, attempt)
