"""Reminder delivery: the active daemon posts reminders from the ``reminder_deliveries`` rows.

The rows are the only record. ``rescan`` reads every pending row (its due time from its
meeting, as the database holds it now) and arms one APScheduler date job per row; the
daemon calls it at start and on every outbox sweep, which a PostgreSQL NOTIFY from a
reminders sync in any process wakes at once (SQLite: the sweep's poll). A timer only
hands the row to a delivery task and returns, so APScheduler's ``max_instances`` can never
drop a run, and ``misfire_grace_time`` is None: lateness is judged here, from the row.

A delivery claims the row (core/reminders/rows.py), decides (core/reminders/policy.py),
and carries the decision out: post with the row's nonce, look in the channel for our own
earlier post, re-arm, or settle the row as sent, missed or cancelled. A failed post is
retried with the engine's capped backoff and recorded like a sync key's failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sentry_sdk
from apscheduler.jobstores.base import JobLookupError

from core.clients.ports import DiscordPort
from core.clock import Clock
from core.db.models import SyncType
from core.db.session import SessionFactory
from core.engine.running.backoff import retry_delay, scaled_delay
from core.engine.running.outcomes import classify_exception
from core.engine.running.state import SyncKey
from core.errors import CredentialsRejectedError, SyncError
from core.lanes import Lane
from core.observability import get_logger
from core.reminders import rows as rows
from core.reminders.plan import ReminderKey
from core.reminders.policy import Action, timer_time

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from core.engine.running.context import Runtime

log = get_logger("groupsync.reminders")

# Posts in flight at once: enough to keep 100 channels' buckets busy, few enough that the
# database pool is never exhausted (each delivery holds a connection only briefly).
DELIVERY_CONCURRENCY = 16
# Discord's clock and ours may disagree: look this far before our first attempt.
CLOCK_SKEW = timedelta(seconds=60)
# While Discord is paused a due reminder looks again this often; with the pause flags'
# half-second cache, a resume is honoured within a second.
PAUSE_RECHECK = timedelta(seconds=0.5)


def job_id(key: ReminderKey) -> str:
    return f"reminder_{key.meeting_id}_{key.offset_minutes}"


@dataclass(frozen=True)
class DeliveryOptions:
    grace: timedelta
    nonce_window: timedelta  # already multiplied by the time scale
    time_scale: float


Spawn = Callable[[Coroutine[Any, Any, None]], Any]
# Asks whether an operator paused Discord (core/engine/running/pauses.py reads the rows).
PausedCheck = Callable[[], Awaitable[bool]]


# Told when a post meets Discord rejecting the bot token (the engine's credential watch
# parks Discord and probes it; the group id names the first key for the streak's report).
RejectedHook = Callable[[CredentialsRejectedError, int], Awaitable[None]]


async def _nobody_told(_error: CredentialsRejectedError, _group_id: int) -> None:
    return None


async def _never_paused() -> bool:
    return False


class ReminderDelivery:
    def __init__(
        self,
        session_factory: SessionFactory,
        discord: DiscordPort,
        scheduler: BaseScheduler,
        clock: Clock,
        options: DeliveryOptions,
        spawn: Spawn,
        discord_paused: PausedCheck = _never_paused,
        rejected: RejectedHook = _nobody_told,
    ) -> None:
        self._sessions = session_factory
        self._discord = discord
        self._scheduler = scheduler
        self._clock = clock
        self._options = options
        self._spawn = spawn
        self._discord_paused = discord_paused
        self._rejected = rejected
        self._armed: dict[ReminderKey, datetime] = {}
        self._inflight: set[ReminderKey] = set()
        self._limit = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    # ---- timers ---------------------------------------------------------------------------
    async def rescan(self) -> int:
        """Arm a timer for every pending row, re-arm moved ones, drop the rest. Returns how
        many rows are pending."""
        now = self._clock.now()
        pending = await rows.pending(self._sessions)
        seen = set()
        for key, facts in pending:
            seen.add(key)
            armed = self._armed.get(key)
            at = timer_time(facts, now)
            if key in self._inflight or (armed is not None and armed <= now and at <= now):
                continue  # running, or already firing at once: do not push it back
            self._arm(key, at)
        for key in [k for k in self._armed if k not in seen]:
            self._disarm(key)
        return len(pending)

    def _arm(self, key: ReminderKey, at: datetime) -> None:
        if self._armed.get(key) == at:
            return
        self._armed[key] = at
        self._scheduler.add_job(
            self._fire,
            trigger="date",
            run_date=at,
            id=job_id(key),
            name=job_id(key),
            replace_existing=True,
            misfire_grace_time=None,  # late is judged from the row, never dropped here
            max_instances=1000,
            coalesce=True,
            kwargs={"meeting_id": key.meeting_id, "offset_minutes": key.offset_minutes},
        )

    def _disarm(self, key: ReminderKey) -> None:
        self._armed.pop(key, None)
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(job_id(key))

    async def _fire(self, meeting_id: int, offset_minutes: int) -> None:
        """The job: hand over and return at once (see max_instances in the module doc)."""
        key = ReminderKey(meeting_id, offset_minutes)
        self._armed.pop(key, None)
        if key in self._inflight:
            return  # the delivery running now re-arms whatever is still owed
        self._inflight.add(key)
        self._spawn(self._deliver_quietly(key))

    async def _deliver_quietly(self, key: ReminderKey) -> None:
        try:
            async with self._limit:
                await self._deliver(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # database blinked: the row still says owed; look again soon
            log.exception("reminder_delivery_crashed", **_fields(key))
            self._arm(key, self._clock.now() + timedelta(seconds=self._backoff(0)))
        finally:
            self._inflight.discard(key)

    # ---- one delivery ---------------------------------------------------------------------
    async def _deliver(self, key: ReminderKey) -> None:
        now = self._clock.now()
        if await self._discord_paused():
            # A paused service is never called. The row is left untouched (not claimed), so
            # after the resume it is judged as usual: posted if still within grace, else
            # missed. Look again soon: the resume must be honoured within a second.
            log.info("reminder_paused", reason="Discord is paused by an operator, or "
                     "rejected the bot token (parked until a probe works)", **_fields(key))
            self._arm(key, now + PAUSE_RECHECK)
            return
        opts = self._options
        claim = await rows.claim(self._sessions, key, now, opts.grace, opts.nonce_window)
        if claim is None:
            return
        decision = claim.decision
        if decision.action == Action.NOTHING:
            return
        if decision.action == Action.CANCEL:
            if await rows.record_cancelled(self._sessions, key, now):
                log.info("reminder_cancelled", reason="meeting or group gone, or no text channel",
                         group_id=claim.group_id, **_fields(key))
            return
        if decision.action == Action.WAIT:
            await self._wait(claim, decision.at or now)
            return
        if decision.action == Action.MISS:
            await self._miss(claim, now)
            return
        await self._post(claim)

    async def _wait(self, claim: rows.Claim, at: datetime) -> None:
        key = claim.key
        if claim.decision.check_channel and claim.message is not None:
            try:
                found = await self._find_own_post(claim)
            except SyncError as exc:
                await self._failed(claim, exc)
                return
            if found is not None:
                await self._sent(claim, found, how="found in the channel")
                return
            await rows.record_not_posted(self._sessions, key)
        log.info("reminder_not_due", due_at=at.isoformat(), group_id=claim.group_id,
                 **_fields(key))
        self._arm(key, at)

    async def _miss(self, claim: rows.Claim, now: datetime) -> None:
        error = None
        if claim.decision.check_channel and claim.message is not None:
            try:
                found = await self._find_own_post(claim)
            except SyncError as exc:
                found, error = None, f"could not check the channel: {exc}"
            if found is not None:
                await self._sent(claim, found, how="found in the channel")
                return
        if await rows.record_missed(self._sessions, claim.key, now, error):
            due = claim.facts.due_at
            log.warning(
                "reminder_missed",
                reason=f"not posted within the grace window "
                f"({self._options.grace.total_seconds():g} s)",
                late_seconds=round((now - due).total_seconds(), 3) if due else None,
                group_id=claim.group_id,
                last_error=error,
                **_fields(claim.key),
            )

    async def _post(self, claim: rows.Claim) -> None:
        message = claim.message
        assert message is not None  # a post is decided only when meeting and group exist
        try:
            if claim.decision.check_channel:
                found = await self._find_own_post(claim)
                if found is not None:
                    await self._sent(claim, found, how="found in the channel")
                    return
            message_id = await self._discord.send_message(
                message.channel_id, message.text, message.nonce, Lane.INTERACTIVE,
                mention_user_ids=message.mentions,
            )
        except SyncError as exc:
            await self._failed(claim, exc)
            return
        await self._sent(claim, message_id, how="posted")

    async def _find_own_post(self, claim: rows.Claim) -> str | None:
        message = claim.message
        assert message is not None
        assert claim.facts.first_post_at is not None
        since = claim.facts.first_post_at - CLOCK_SKEW
        posted = await self._discord.own_messages_since(message.channel_id, since,
                                                        Lane.INTERACTIVE)
        log.info("reminder_channel_checked", found=any(
            p.content.startswith(message.headline) for p in posted), **_fields(claim.key))
        return next((p.message_id for p in posted if p.content.startswith(message.headline)),
                    None)

    async def _sent(self, claim: rows.Claim, message_id: str, how: str) -> None:
        now = self._clock.now()
        await rows.record_sent(self._sessions, claim.key, message_id, now)
        due = claim.facts.due_at
        log.info(
            "reminder_sent",
            how=how,
            message_id=message_id,
            group_id=claim.group_id,
            attempt=claim.attempt,
            late_seconds=round((now - due).total_seconds(), 3) if due else None,
            **_fields(claim.key),
        )

    async def _failed(self, claim: rows.Claim, exc: SyncError) -> None:
        now = self._clock.now()
        outcome = classify_exception(exc)
        attempt = claim.attempt + 1
        delay = self._backoff(claim.attempt, outcome.retry_after)
        failure = rows.Failure(
            attempt=attempt,
            next_attempt_at=now + timedelta(seconds=delay),
            error=outcome.error or type(exc).__name__,
            error_kind=outcome.error_kind or "error",
            failing_since=claim.failing_since or now,
            sentry_reported_level=max(claim.sentry_reported_level, 1),
        )
        kept = await rows.record_failure(self._sessions, claim.key, failure)
        log.warning(
            "reminder_send_failed",
            attempt=attempt,
            delay=round(delay, 6),
            next_attempt_at=failure.next_attempt_at.isoformat(),
            error=failure.error,
            error_kind=failure.error_kind,
            group_id=claim.group_id,
            sync_type=SyncType.REMINDERS,
            **_fields(claim.key),
        )
        if isinstance(exc, CredentialsRejectedError):
            # The whole service's streak: reported once by the watch, which parks Discord
            # (this reminder then waits like one of a paused Discord).
            await self._rejected(exc, claim.group_id)
        elif kept and claim.sentry_reported_level == 0:  # once per failure streak
            _report(claim, failure, exc)
        self._arm(claim.key, failure.next_attempt_at)

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        return scaled_delay(retry_delay(attempt), self._options.time_scale, retry_after)


def _fields(key: ReminderKey) -> dict[str, Any]:
    return {"meeting_id": key.meeting_id, "offset_minutes": key.offset_minutes}


def _report(claim: rows.Claim, failure: rows.Failure, exc: SyncError) -> None:
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("sync_type", SyncType.REMINDERS)
        scope.set_tag("group_id", str(claim.group_id))
        scope.set_tag("error_kind", failure.error_kind)
        scope.set_extra("meeting_id", claim.key.meeting_id)
        scope.set_extra("offset_minutes", claim.key.offset_minutes)
        scope.set_extra("failing_since", failure.failing_since.isoformat())
        sentry_sdk.capture_exception(exc)


def delivery_for(rt: Runtime, scheduler: BaseScheduler) -> ReminderDelivery | None:
    """The delivery of an active daemon (or an embedding application's runtime)."""
    port = rt.client_board.discord  # the runtime's, as its syncer factory opened it
    if port is None:
        log.info("reminder_delivery_off", reason="no Discord client for reminders")
        return None
    options = DeliveryOptions(
        grace=timedelta(seconds=rt.settings.reminder_grace_seconds),
        # Grace is about meeting times (wall clock); the nonce window is a duration of
        # Discord's, scaled like every engine delay (and like the sandbox's window).
        nonce_window=timedelta(
            seconds=rt.time_scale.seconds(rt.settings.reminder_nonce_window_seconds)
        ),
        time_scale=rt.time_scale.factor,
    )
    async def discord_paused() -> bool:
        # A Discord that rejected the bot token is not called either: parked like a pause.
        return (await rt.pauses.is_paused(SyncType.DISCORD)
                or await rt.credentials.parked(SyncType.DISCORD) is not None)

    async def rejected(error: CredentialsRejectedError, group_id: int) -> None:
        await rt.credentials.rejected(error, SyncKey(SyncType.REMINDERS, group_id),
                                      rt.clock.now())

    return ReminderDelivery(
        rt.session_factory, port, scheduler, rt.clock, options, rt.coordinator.spawn,
        discord_paused=discord_paused, rejected=rejected,
    )
