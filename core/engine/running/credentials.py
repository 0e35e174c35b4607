"""A service that rejected groupsync's credentials is parked as a whole (issue 25).

A revoked bot token or a refused Google token exchange is not one key's problem: every
call of the service gets the same answer, and each Discord 401 counts toward Cloudflare's
ban. So the first run that meets ``CredentialsRejectedError`` marks the service
``credentials_rejected`` on its ``service_state`` row (the service's words, since when,
the setting to fix, the next probe). That run is the one key recorded; from then on the
service's sync types are *parked* like a service whose breaker is open (parking.py): no
claim, no record, no call per key, and the outbox sweep leaves them out. The rows still
say the keys are owed.

Once a probe interval (60 s, scaled by TIME_SCALE) the leading runtime asks the service
with one cheap call through the client's own probe (Discord ``GET /users/@me``, one Google
token exchange; core/clients/probes.py). When the answer is OK the row goes back to
``healthy``, the keys waiting on the rejection are made due and the sweep is woken: the
owed keys converge with no operator action. One log line and one Sentry event per streak
(the run that began it), and one when it ends.

The row is the truth for every process: a standby that takes over reads it and keeps the
keys parked until its own probe succeeds; the CLI, the API and the dashboard read it too.
Reads go through a short cache, as the pause flags do (pauses.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sentry_sdk
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import metrics
from core.clients.probes import Probe, Verdict
from core.clients.status import ClientBoard, CredentialProbe
from core.db.models import ServiceHealth, ServiceState, SyncState, SyncType
from core.db.session import SessionFactory
from core.engine.running.outbox import notify_owed
from core.engine.running.state import SyncKey, owed
from core.errors import CredentialsRejectedError
from core.observability import get_logger
from core.syncers import types

log = get_logger("groupsync.credentials")

PROBE_INTERVAL_SECONDS = 60.0  # nominal; multiplied by TIME_SCALE
CACHE_SECONDS = 0.5  # like the pause flags: every process sees a change within a second


@dataclass(frozen=True)
class Rejection:
    service: str
    words: str  # the service's own
    variable: str  # the setting to fix
    since: datetime
    next_probe_at: datetime | None

    def detail(self) -> str:
        probe = self.next_probe_at.isoformat() if self.next_probe_at else "soon"
        return (f"{types.service_label(self.service)} rejected the credentials: {self.words} "
                f"(fix {self.variable}; parked: the key stays owed, next probe {probe})")


# ---- decisions (pure) -------------------------------------------------------------------------
def probe_due(rejection: Rejection, now: datetime) -> bool:
    return rejection.next_probe_at is None or rejection.next_probe_at <= now


def next_probe(now: datetime, interval: float) -> datetime:
    return now + timedelta(seconds=interval)


def words_after(rejection: Rejection, probe: Probe) -> str:
    """A refusal says it again in its own words; an unanswered probe keeps the last ones."""
    return probe.words if probe.verdict is Verdict.REJECTED and probe.words else rejection.words


# ---- the watch --------------------------------------------------------------------------------
class CredentialWatch:
    def __init__(
        self,
        session_factory: SessionFactory | None,
        interval: float = PROBE_INTERVAL_SECONDS,
        ttl: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = session_factory
        self.interval = interval  # seconds, already scaled
        self._ttl = ttl
        self._monotonic = monotonic
        self._rejected: dict[str, Rejection] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()
        self._probing: dict[str, asyncio.Task[None]] = {}
        # Services this watch has asked (or found rejected itself). One it has not is a
        # rejection an earlier daemon found: a restart with fixed credentials, or a
        # standby taking over, asks at once instead of waiting out the stored next probe.
        self._asked: set[str] = set()

    # ---- reading ------------------------------------------------------------------------------
    async def rejections(self) -> dict[str, Rejection]:
        if self._sessions is None:
            return {}
        if self._monotonic() - self._read_at < self._ttl:
            return self._rejected
        async with self._lock:
            if self._monotonic() - self._read_at >= self._ttl:
                self._rejected = await read_rejections(self._sessions)
                self._read_at = self._monotonic()
        return self._rejected

    async def parked(self, sync_type: SyncType) -> Rejection | None:
        """The rejection that parks ``sync_type``'s keys, or None."""
        service = types.service_of(sync_type) if types.is_registered(sync_type) else None
        if service is None:
            return None
        return (await self.rejections()).get(service)

    async def parked_types(self) -> set[SyncType]:
        return {t for service in await self.rejections() for t in types.types_of(service)}

    # ---- a run met the rejection ----------------------------------------------------------------
    async def rejected(self, error: CredentialsRejectedError, key: SyncKey, now: datetime
                       ) -> bool:
        """Mark the service rejected; True when this run began the streak (it is recorded,
        logged and reported; the others are parked without a record)."""
        service = error.service or types.service_of(key.sync_type) or key.sync_type
        if service in self._rejected:
            return False
        assert self._sessions is not None
        self._asked.add(service)
        probe_at = next_probe(now, self.interval)
        began = await mark_rejected(self._sessions, service, error.words, error.variable,
                                    now, probe_at)
        self._rejected = {**self._rejected, service: Rejection(
            service, error.words, error.variable, now, probe_at)}
        if began:
            _streak_began(service, error, key, probe_at)
        return began

    # ---- probing (the leading runtime's sweep) --------------------------------------------------
    async def tick(self, board: ClientBoard, now: datetime, wake: Callable[[], None]) -> None:
        """Start the probe of each rejected service that is due (one in flight per service,
        in the background: a service that does not answer must not hold the sweep)."""
        for service, rejection in (await self.rejections()).items():
            probe = board.probe(service)
            due = probe_due(rejection, now) or service not in self._asked
            if probe is None or not due:
                continue
            running = self._probing.get(service)
            if running is not None and not running.done():
                continue
            self._asked.add(service)
            self._probing[service] = asyncio.get_running_loop().create_task(
                self._probe(rejection, probe, wake))

    async def _probe(self, rejection: Rejection, probe: CredentialProbe,
                     wake: Callable[[], None]) -> None:
        assert self._sessions is not None
        try:
            found = await probe()
            now = datetime.now(rejection.since.tzinfo)
            if found.verdict is Verdict.OK:
                await mark_healthy(self._sessions, rejection.service, now)
                self.forget()
                _streak_ended(rejection, now)
                wake()
                return
            await set_next_probe(self._sessions, rejection.service,
                                 next_probe(now, self.interval), words_after(rejection, found))
            self.forget()
            log.debug("service_credentials_probe", service=rejection.service,
                      verdict=found.verdict.value, error=found.words)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a database blip: the next sweep probes again
            log.warning("service_credentials_probe_failed", service=rejection.service,
                        error=f"{type(exc).__name__}: {exc}"[:300])

    def known(self) -> bool:
        """Whether the last read (or a run of this process) found a service rejected: an
        idle sweep probes only then, without reading the rows again."""
        return bool(self._rejected)

    def forget(self) -> None:
        """Re-read on the next question."""
        self._read_at = float("-inf")

    async def close(self) -> None:
        for task in self._probing.values():
            task.cancel()
        await asyncio.gather(*self._probing.values(), return_exceptions=True)
        self._probing.clear()


def _streak_began(service: str, error: CredentialsRejectedError, key: SyncKey,
                  probe_at: datetime) -> None:
    metrics.CREDENTIALS_REJECTED.labels(service=service).inc()
    log.warning("service_credentials_rejected", service=service, error=error.words,
                variable=error.variable, sync_type=key.sync_type, group_id=key.group_id,
                next_probe_at=probe_at.isoformat(),
                effect="the service's keys are parked (no calls) until a probe succeeds")
    if not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("service", service)
        scope.set_tag("error_kind", error.kind)
        scope.set_tag("variable", error.variable)
        # The key whose run began the streak, tagged as every failure report is.
        scope.set_tag("sync_type", key.sync_type)
        scope.set_tag("group_id", str(key.group_id))
        sentry_sdk.capture_exception(error)


def _streak_ended(rejection: Rejection, now: datetime) -> None:
    log.info("service_credentials_accepted", service=rejection.service,
             variable=rejection.variable,
             rejected_for_seconds=round((now - rejection.since).total_seconds(), 3),
             effect="parked keys run again")


# ---- rows -------------------------------------------------------------------------------------
async def read_rejections(session_factory: SessionFactory) -> dict[str, Rejection]:
    async with session_factory() as session:
        rows = (await session.scalars(select(ServiceState).where(
            ServiceState.health == ServiceHealth.CREDENTIALS_REJECTED))).all()
    return {r.service: Rejection(r.service, r.health_reason or "", r.health_variable or "",
                                 _aware(r.health_since or r.updated_at),
                                 _aware(r.next_probe_at) if r.next_probe_at else None)
            for r in rows}


async def mark_rejected(session_factory: SessionFactory, service: str, words: str,
                        variable: str, now: datetime, probe_at: datetime) -> bool:
    """One conditional UPDATE: True for the one process whose run began the streak."""
    await _ensure_row(session_factory, service, now)
    async with session_factory() as session, session.begin():
        result = await session.execute(
            update(ServiceState)
            .where(ServiceState.service == service,
                   ServiceState.health != ServiceHealth.CREDENTIALS_REJECTED)
            .values(health=ServiceHealth.CREDENTIALS_REJECTED, health_since=now,
                    health_reason=words, health_variable=variable, next_probe_at=probe_at,
                    updated_at=now)
            .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


async def mark_healthy(session_factory: SessionFactory, service: str, now: datetime) -> None:
    """The probe succeeded: healthy again, and the keys that waited on the rejection are
    due now (the one recorded key's backoff included), with a wake-up for the sweep."""
    async with session_factory() as session, session.begin():
        await session.execute(
            update(ServiceState).where(ServiceState.service == service)
            .values(health=ServiceHealth.HEALTHY, health_since=now, health_reason=None,
                    health_variable=None, next_probe_at=None, updated_at=now)
            .execution_options(synchronize_session=False))
        await session.execute(
            update(SyncState)
            .where(SyncState.sync_type.in_(list(types.types_of(service))), owed(),
                   SyncState.error_kind == CredentialsRejectedError.kind,
                   SyncState.next_attempt_at > now)
            .values(next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False))
        await notify_owed(session)


async def set_next_probe(session_factory: SessionFactory, service: str, at: datetime,
                         words: str) -> None:
    async with session_factory() as session, session.begin():
        await session.execute(
            update(ServiceState)
            .where(ServiceState.service == service,
                   ServiceState.health == ServiceHealth.CREDENTIALS_REJECTED)
            .values(next_probe_at=at, health_reason=words)
            .execution_options(synchronize_session=False))


async def _ensure_row(session_factory: SessionFactory, service: str, now: datetime) -> None:
    async with session_factory() as session:
        if await session.get(ServiceState, service) is not None:
            return
    try:
        async with session_factory() as session, session.begin():
            session.add(ServiceState(service=service, paused=False, updated_at=now))
    except IntegrityError:
        pass  # another process made it meanwhile


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
