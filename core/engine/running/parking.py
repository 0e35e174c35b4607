"""Keys of a service whose circuit is open wait in their rows, not in runs (DESIGN §3).

While a service's breaker is open, a run would only claim the key, be refused by the client
and record the refusal: during a long outage that is one claim and one record per owed key
per breaker window, thousands of transactions for zero useful calls. Instead a sync type is
*parked* while its service's breaker (as the client board shows it) is open, and for the
refusal's ``retry_after`` after a run was refused while the half-open probe was in flight.
A parked run returns at once without touching the database and the outbox sweep leaves the
type out. The rows still say the keys are owed, so nothing is lost: once the breaker
half-opens the sweep starts them again, the first becomes the probe, and a closed breaker
(the probe succeeded, or an operator reset it) un-parks the type at once.

While the breaker is half-open only one run per service is let through (``admit``): it is
the probe. Every other run of that service stays parked until the probe's outcome shows on
the breaker, instead of claiming its key, reading its snapshot and recording a refusal
(the breaker lets one call through; without this gate each window cost a slot's worth of
claims, refusals and retry timers).

Pure bookkeeping: ``now`` (monotonic seconds) and the breaker's status are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.clients.status import ServiceStatus
from core.db.models import SyncType
from core.syncers import types
from core.syncers.types import service_of

# What a run kept back by another run's probe is told (seconds): the probe's outcome
# decides, so this only reads as "soon" in the run's result.
PROBE_WAIT_SECONDS = 0.001


@dataclass(frozen=True)
class Admission:
    wait: float  # seconds parked; 0.0: the run may call its service
    probe: bool = False  # the run holds its service's probe: ``probe_ended`` when it ends


@dataclass
class Parking:
    _until: dict[SyncType, float] = field(default_factory=dict)
    _why: dict[SyncType, str] = field(default_factory=dict)
    _probing: set[str] = field(default_factory=set)  # services with a probe run in flight

    def park(self, sync_type: SyncType, now: float, retry_after: float, why: str) -> None:
        """A run of ``sync_type`` was refused by an open circuit: wait ``retry_after``."""
        until = now + max(retry_after, 0.0)
        if until > self._until.get(sync_type, 0.0):
            self._until[sync_type], self._why[sync_type] = until, why

    def unpark(self, sync_type: SyncType) -> None:
        self._until.pop(sync_type, None)
        self._why.pop(sync_type, None)

    def parked_for(
        self, sync_type: SyncType, now: float, statuses: Iterable[ServiceStatus]
    ) -> float:
        """Seconds until runs of ``sync_type`` may call their service again (0.0: now).
        While another run probes the half-open service: a token wait, the probe decides."""
        return self._check(sync_type, now, statuses)[0]

    def admit(
        self, sync_type: SyncType, now: float, statuses: Iterable[ServiceStatus]
    ) -> Admission:
        """May a run of ``sync_type`` go ahead now? While the breaker is half-open the
        first run admitted becomes the probe; the others are parked until it ends."""
        wait, half_open = self._check(sync_type, now, statuses)
        if wait > 0.0:
            return Admission(wait)
        service = service_of(sync_type)
        if not half_open or service is None:
            return Admission(0.0)
        self._probing.add(service)
        return Admission(0.0, probe=True)

    def probe_ended(self, sync_type: SyncType) -> None:
        service = service_of(sync_type)
        if service is not None:
            self._probing.discard(service)

    def _check(
        self, sync_type: SyncType, now: float, statuses: Iterable[ServiceStatus]
    ) -> tuple[float, bool]:
        """(seconds parked, whether the breaker is half-open)."""
        service = service_of(sync_type)
        breaker = next((s for s in statuses if s.service == service), None)
        if breaker is None or breaker.breaker_state == "closed":
            if breaker is not None:
                self.unpark(sync_type)  # the probe succeeded, or an operator closed it
                return 0.0, False
            return max(self._until.get(sync_type, 0.0) - now, 0.0), False
        wait = max(breaker.seconds_until_half_open, self._until.get(sync_type, 0.0) - now, 0.0)
        half_open = breaker.breaker_state == "half_open"
        if wait <= 0.0 and half_open and service in self._probing:
            wait = PROBE_WAIT_SECONDS
        return wait, half_open

    def reason(self, sync_type: SyncType, seconds: float) -> str:
        service = service_of(sync_type)
        if seconds <= PROBE_WAIT_SECONDS and service in self._probing:
            return (f"{service} circuit is half-open and another run is its probe "
                    "(parked: the key stays owed; it runs once the probe closes the circuit)")
        why = self._why.get(sync_type) or f"{service} circuit is open"
        return f"{why} (parked: the key stays owed; next try in {seconds:.2f}s)"

    def parked_types(self, now: float, statuses: Iterable[ServiceStatus]) -> list[SyncType]:
        statuses = list(statuses)
        return [t for t in types.names() if self.parked_for(t, now, statuses) > 0.0]

    def probe_types(self, now: float, statuses: Iterable[ServiceStatus]) -> set[SyncType]:
        """Types not parked whose service's breaker is half-open: one run of such a type is
        the probe, so starting more than one only parks the rest at once."""
        statuses = list(statuses)
        return {t for t in types.names() if self._check(t, now, statuses) == (0.0, True)}
