"""The sandbox clock: real monotonic time plus a time scale for nominal durations."""

from __future__ import annotations

import time


class Clock:
    """Reads time; converts nominal (documented) durations into real seconds."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale

    def now(self) -> float:
        """Monotonic seconds, for windows and the request log."""
        return time.monotonic()

    def wall(self) -> float:
        """Epoch seconds, for headers such as X-RateLimit-Reset."""
        return time.time()

    def scaled(self, nominal_seconds: float) -> float:
        """Real seconds for a nominal duration."""
        return nominal_seconds * self.time_scale
