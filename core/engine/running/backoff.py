"""Capped exponential backoff (DESIGN §2): pure, so it is tested with tables of cases.

The formula is the production one in seconds; callers multiply by the time scale.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BACKOFF_CAP_SECONDS = 60.0
CAP_ATTEMPT = 6  # 2**6 = 64 > 60: from this attempt on the cap holds (2**attempt never grows huge)


def backoff_seconds(attempt: int) -> float:
    """min(2**attempt, 60): attempt 0 → 1 s, 1 → 2 s … 6 and beyond → 60 s."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ValueError(f"attempt must be a non-negative int, got {attempt!r}")
    return min(float(2 ** min(attempt, CAP_ATTEMPT)), BACKOFF_CAP_SECONDS)


def retry_delay(
    attempt: int,
    *,
    include_jitter: bool = True,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Backoff plus jitter in [0, 1) seconds, so retries of many keys do not fire in step."""
    delay = backoff_seconds(attempt)
    if include_jitter:
        # random.uniform(0, 1) may return 1.0 by rounding; keep the documented [0, 1).
        delay += min(uniform(0.0, 1.0), 0.999999)
    return delay


def scaled_delay(backoff: float, time_scale: float, retry_after: float | None) -> float:
    """The delay actually used: scaled backoff, or the server's hint when that is longer.

    ``retry_after`` is already in the service's own time (the sandbox is scaled too), so it
    is not multiplied again.
    """
    delay = backoff * time_scale
    if retry_after is not None and retry_after > delay:
        return float(retry_after)
    return delay
