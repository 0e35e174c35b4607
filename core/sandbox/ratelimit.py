"""Rate-limit counters: a sliding window and a fixed-window bucket (pure, clock passed in)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


class SlidingWindow:
    """Weighted events over the last ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.window:
            _, weight = self._events.popleft()
            self._total -= weight

    def used(self, now: float) -> int:
        self._expire(now)
        return self._total

    def would_exceed(self, now: float, weight: int = 1) -> bool:
        return self.used(now) + weight > self.limit

    def add(self, now: float, weight: int = 1) -> None:
        self._expire(now)
        self._events.append((now, weight))
        self._total += weight

    def retry_after(self, now: float, weight: int = 1) -> float:
        """Seconds until ``weight`` more would fit."""
        self._expire(now)
        excess = self._total + weight - self.limit
        for at, w in self._events:
            excess -= w
            if excess <= 0:
                return max(at + self.window - now, 0.0)
        return 0.0


@dataclass
class BucketState:
    limit: int
    remaining: int
    reset_after: float


class FixedWindowBucket:
    """Discord-style bucket: ``limit`` requests, refilled ``period`` s after the first."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._resets_at: float | None = None
        self._used = 0

    def _roll(self, now: float) -> None:
        if self._resets_at is not None and now >= self._resets_at:
            self._resets_at = None
            self._used = 0

    def try_acquire(self, now: float) -> bool:
        self._roll(now)
        if self._used >= self.limit:
            return False
        if self._resets_at is None:
            self._resets_at = now + self.period
        self._used += 1
        return True

    def state(self, now: float) -> BucketState:
        self._roll(now)
        reset_after = self.period if self._resets_at is None else self._resets_at - now
        return BucketState(self.limit, self.limit - self._used, max(reset_after, 0.0))
