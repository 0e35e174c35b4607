"""Injected faults: what to break, for which requests, and for how long."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# "late_answer": the request is applied, then answered only after ``latency`` (scaled)
# seconds, so a client that gives up first cannot know whether its write took effect.
# "html_5xx" is a 502/503 answered by Cloudflare in front of Discord: an HTML page, not JSON.
KINDS = frozenset({
    "5xx", "429", "latency", "late_answer", "outage", "revoked_token", "quota_exceeded",
    "html_5xx",
})


@dataclass
class Fault:
    """One injected fault. ``count`` None means until cleared; ``fraction`` None means always."""

    id: int
    kind: str
    count: int | None = None
    fraction: float | None = None
    route: str | None = None
    retry_after: float | None = None
    latency: float | None = None
    status: int | None = None

    def applies_to(self, route_key: str) -> bool:
        if self.route is None:
            return True
        template = route_key.split(" ", 1)[-1]
        return self.route in (route_key, template)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultHandle:
    """Returned by ``inject``; ``clear()`` removes the fault (and ends an outage)."""

    def __init__(self, fault: Fault, remove: Callable[[int], None]) -> None:
        self.fault = fault
        self._remove = remove

    @property
    def id(self) -> int:
        return self.fault.id

    def clear(self) -> None:
        self._remove(self.fault.id)


class FaultSet:
    """The faults active on one service."""

    def __init__(self, seed: int = 0) -> None:
        self._faults: dict[int, Fault] = {}
        self._next_id = 1
        self._rng = random.Random(seed)

    def add(self, kind: str, **params: Any) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(KINDS)}")
        fraction = params.get("fraction")
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ValueError("fraction must be in (0, 1]")
        if params.get("count") is not None and params["count"] < 1:
            raise ValueError("count must be at least 1")
        fault = Fault(id=self._next_id, kind=kind, **params)
        self._next_id += 1
        self._faults[fault.id] = fault
        return fault

    def remove(self, fault_id: int) -> Fault | None:
        return self._faults.pop(fault_id, None)

    def clear(self) -> list[Fault]:
        removed = list(self._faults.values())
        self._faults.clear()
        return removed

    def active(self) -> list[Fault]:
        return list(self._faults.values())

    def has(self, kind: str) -> bool:
        return any(f.kind == kind for f in self._faults.values())

    def take(self, route_key: str, *, named_only: bool = False) -> list[Fault]:
        """Faults that fire for this request, consuming one use of counted faults.

        ``named_only`` skips service-wide faults (those without a route).
        """
        fired: list[Fault] = []
        for fault in list(self._faults.values()):
            if fault.kind == "outage" or (named_only and fault.route is None):
                continue
            if not fault.applies_to(route_key):
                continue
            if fault.fraction is not None and self._rng.random() >= fault.fraction:
                continue
            fired.append(fault)
            if fault.count is not None:
                fault.count -= 1
                if fault.count == 0:
                    del self._faults[fault.id]
        return fired


def first(fired: list[Fault], kind: str) -> Fault | None:
    return next((f for f in fired if f.kind == kind), None)
