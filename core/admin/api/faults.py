"""Faults injected into the admin API itself, for tests of its clients (the dashboard).

Off unless ``ADMIN_FAULT_INJECTION`` is set (like ``TIME_SCALE``, a setting for tests).
A fault makes the next ``count`` requests of a lane answer ``status`` (503 or 429) with
``Retry-After``; with ``after`` the request is carried out first and only its answer is
replaced, as when a proxy loses the response: the client cannot tell whether it ran, so
it must retry with the same ``Idempotency-Key``.

Control: ``POST /_test/faults`` {"lane", "status", "count", "after", "retry_after"} and
``DELETE /_test/faults`` (bearer token required, not rate limited).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.admin.api.ratelimit import Lane


@dataclass
class InjectedFault:
    lane: Lane
    status: int
    count: int
    after: bool = False
    retry_after: int = 1

    def __post_init__(self) -> None:
        if self.status not in (429, 503):
            raise ValueError("status must be 429 or 503")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.retry_after < 0:
            raise ValueError("retry_after must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "lane": self.lane.value}


class AdminFaults:
    def __init__(self) -> None:
        self._faults: list[InjectedFault] = []

    def add(self, fault: InjectedFault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[InjectedFault]:
        return list(self._faults)

    def take(self, lane: Lane) -> InjectedFault | None:
        """The fault this request meets, using up one of its count."""
        for fault in self._faults:
            if fault.lane is lane:
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None
