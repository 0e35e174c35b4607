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

Pure bookkeeping: ``now`` (monotonic seconds) and the breaker's status are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.clients.status import ServiceStatus
from core.db.models import SyncType
from core.engine.pauses import service_of


@dataclass
class Parking:
    _until: dict[SyncType, float] = field(default_factory=dict)
    _why: dict[SyncType, str] = field(default_factory=dict)

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
        """Seconds until runs of ``sync_type`` may call their service again (0.0: now)."""
        service = service_of(sync_type)
        breaker = next((s for s in statuses if s.service == service), None)
        if breaker is not None and breaker.breaker_state == "closed":
            self.unpark(sync_type)  # the probe succeeded, or an operator closed it
            return 0.0
        open_for = breaker.seconds_until_half_open if breaker is not None else 0.0
        return max(open_for, self._until.get(sync_type, 0.0) - now, 0.0)

    def reason(self, sync_type: SyncType, seconds: float) -> str:
        why = self._why.get(sync_type) or f"{service_of(sync_type)} circuit is open"
        return f"{why} (parked: the key stays owed; next try in {seconds:.2f}s)"

    def parked_types(self, now: float, statuses: Iterable[ServiceStatus]) -> list[SyncType]:
        statuses = list(statuses)
        return [t for t in SyncType if self.parked_for(t, now, statuses) > 0.0]
