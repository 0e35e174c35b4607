"""What both fakes share: the request log, fault injection, and outages of their listener."""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.sandbox.clock import Clock
from core.sandbox.faults import Fault, FaultHandle, FaultSet
from core.sandbox.listener import Listener
from core.sandbox.reqlog import RequestLog, RequestRecord


class FakeService:
    name = "service"

    def __init__(self, clock: Clock, seed: int) -> None:
        self.clock = clock
        self.log = RequestLog()
        self.faults = FaultSet(seed)
        self.listener: Listener | None = None  # set by the server that serves this fake

    # ---- request log -------------------------------------------------------------------
    @property
    def request_log(self) -> list[RequestRecord]:
        return self.log.records

    def counts(self) -> Counter[tuple[str, int]]:
        """Requests per (route, status); route is "METHOD /template"."""
        return self.log.counts()

    def clear_log(self) -> None:
        self.log.clear()

    # ---- faults ------------------------------------------------------------------------------
    def inject(
        self,
        kind: str,
        *,
        count: int | None = None,
        fraction: float | None = None,
        route: str | None = None,
        retry_after: float | None = None,
        latency: float | None = None,
        status: int | None = None,
    ) -> FaultHandle:
        """Start a fault. Durations are nominal seconds (multiplied by the time scale)."""
        fault = self.faults.add(
            kind, count=count, fraction=fraction, route=route,
            retry_after=retry_after, latency=latency, status=status,
        )
        if kind == "outage" and self.listener is not None:
            self.listener.suspend()
        return FaultHandle(fault, self.clear_fault)

    def clear_fault(self, fault_id: int) -> None:
        self._after_removal([f for f in [self.faults.remove(fault_id)] if f is not None])

    def clear_faults(self) -> None:
        self._after_removal(self.faults.clear())

    def active_faults(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.faults.active()]

    def _after_removal(self, removed: list[Fault]) -> None:
        ended_outage = any(f.kind == "outage" for f in removed)
        if ended_outage and not self.faults.has("outage") and self.listener is not None:
            self.listener.resume()
