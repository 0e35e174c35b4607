"""Time as a dependency: the engine is handed a clock and a time scale, never reaches for them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class TimeScale:
    """Multiplies every engine delay. 1.0 in production; tests use e.g. 0.001 so the real
    scheduler runs a 60 s backoff in 60 ms while the formula stays the production one."""

    factor: float = 1.0

    def seconds(self, seconds: float) -> float:
        return seconds * self.factor

