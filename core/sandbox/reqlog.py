"""The request log each fake keeps: one record per request it answered."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    service: str
    method: str
    path: str
    route: str  # "METHOD /template", e.g. "PUT /channels/{channel_id}/permissions/{target}"
    status: int
    time: float  # monotonic seconds when the request arrived
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)
    quota_units: int = 0
    user: str | None = None
    audit_reason: str | None = None
    faults: list[str] = field(default_factory=list)
    batch: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)

    def clear(self) -> None:
        self.records.clear()

    def counts(self) -> Counter[tuple[str, int]]:
        """Requests per (route, status)."""
        return Counter((r.route, r.status) for r in self.records)
