"""A snapshot of one service's outbound health, for logs, status commands and the dashboard."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    breaker_state: str  # "closed" | "open" | "half_open"
    seconds_until_half_open: float  # 0 unless open: the countdown for the banner
    consecutive_failures: int
    rate_limited_for: dict[str, float] = field(default_factory=dict)  # lane → seconds left
    invalid_requests: int | None = None  # Discord only: 401/403/429 in the current window
    invalid_request_budget: int | None = None

    @property
    def available(self) -> bool:
        return self.breaker_state != "open"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds_until_half_open"] = round(self.seconds_until_half_open, 3)
        data["rate_limited_for"] = {k: round(v, 3) for k, v in self.rate_limited_for.items()}
        return data
