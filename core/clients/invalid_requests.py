"""Discord's invalid-request guard (docs: topics/rate-limits, "Invalid Request Limit").

10,000 responses with status 401, 403 or 429 (429s of scope ``shared`` excepted) in ten
minutes get the IP banned by Cloudflare for a while. We count every such response the
library sees, its own retries included, in a sliding window, and refuse to call Discord
once our budget (well below 10,000) is spent, until the window has room again.

Pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections import deque

INVALID_STATUSES = frozenset({401, 403, 429})


def is_invalid(status: int, scope: str | None) -> bool:
    return status in INVALID_STATUSES and not (status == 429 and scope == "shared")


class InvalidRequestGuard:
    def __init__(self, budget: int = 5000, window: float = 600.0) -> None:
        if budget < 1:
            raise ValueError("budget must be at least 1")
        self.budget = budget
        self.window = window
        self._times: deque[float] = deque()

    def record(self, now: float, status: int, scope: str | None = None) -> bool:
        """Count one response; True when it was an invalid one."""
        if not is_invalid(status, scope):
            return False
        self._times.append(now)
        self._expire(now)
        return True

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def retry_after(self, now: float) -> float | None:
        """None when calls may go ahead; else seconds until the window has room again."""
        self._expire(now)
        if len(self._times) < self.budget:
            return None
        # The oldest entries must age out until fewer than ``budget`` remain.
        index = len(self._times) - self.budget
        return max(0.0, self._times[index] + self.window - now)

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
