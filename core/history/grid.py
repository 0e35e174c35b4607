"""Time buckets on the engine's timeline: a minute is ``60 * TIME_SCALE`` real seconds.

Integer microseconds throughout, so the bucket of an instant is exact and the same in
every process (and in a test that buckets ``sync_attempts.at`` to compare).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)
MINUTE = "minute"
HOUR = "hour"
RESOLUTIONS = (MINUTE, HOUR)


@dataclass(frozen=True)
class Grid:
    scale: float = 1.0

    @property
    def minute_us(self) -> int:
        return max(1, round(60_000_000 * self.scale))

    def width_us(self, resolution: str) -> int:
        return self.minute_us * (60 if resolution == HOUR else 1)

    def width(self, resolution: str) -> timedelta:
        return timedelta(microseconds=self.width_us(resolution))

    def start(self, at: datetime, resolution: str = MINUTE) -> datetime:
        """The start of the bucket holding ``at``."""
        width = self.width_us(resolution)
        return EPOCH + MICRO * (((at - EPOCH) // MICRO) // width * width)

    def scaled(self, seconds: float) -> timedelta:
        return timedelta(microseconds=round(seconds * 1_000_000 * self.scale))

    def starts(self, first: datetime, last: datetime, step: timedelta) -> list[datetime]:
        """Bucket starts from ``first`` to ``last`` inclusive, ``step`` apart."""
        out, at = [], first
        while at <= last:
            out.append(at)
            at += step
        return out
