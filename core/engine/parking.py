"""Keys of a service whose circuit is open wait in the rows, not in runs (DESIGN §3).

While a service's breaker is open, a run would only claim the key, be refused by the client
and record the refusal: during a long outage that is one claim and one record per owed key
per breaker window, thousands of transactions for zero useful calls. Instead the first
refused run parks its sync type until the breaker half-opens: until then runs of that type
return at once without touching the database, and the outbox sweep does not pick them up.
The rows still say the keys are owed, so nothing is lost; once the park expires the sweep
starts them again, the first becomes the breaker's probe, and a success un-parks the type
at once. Pure bookkeeping with ``now`` passed in (seconds on the monotonic clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.db.models import SyncType


@dataclass
class Parking:
    _until: dict[SyncType, float] = field(default_factory=dict)
    _why: dict[SyncType, str] = field(default_factory=dict)

    def park(self, sync_type: SyncType, now: float, retry_after: float, why: str) -> None:
        until = now + max(retry_after, 0.0)
        if until > self._until.get(sync_type, 0.0):
            self._until[sync_type], self._why[sync_type] = until, why

    def unpark(self, sync_type: SyncType) -> None:
        self._until.pop(sync_type, None)
        self._why.pop(sync_type, None)

    def parked_for(self, sync_type: SyncType, now: float) -> float:
        """Seconds until runs of ``sync_type`` may call their service again (0.0: now)."""
        return max(0.0, self._until.get(sync_type, 0.0) - now)

    def reason(self, sync_type: SyncType) -> str:
        return self._why.get(sync_type, "")

    def parked_types(self, now: float) -> list[SyncType]:
        return [t for t in self._until if self.parked_for(t, now) > 0.0]
