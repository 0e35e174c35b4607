"""What each part of one service's call path (its guard, its lane limiter) is built from."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

C = TypeVar("C")


class ServicePart(Generic[C]):
    """The service's name (for logs and errors), the part's config, and the clock it runs
    on: ``now`` (monotonic seconds) and ``sleep``, handed in so that one fake clock drives
    every part in a test. A part builds its own state in ``_start``."""

    def __init__(
        self,
        service: str,
        config: C,
        now: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.config = config
        self._now = now
        self._sleep = sleep
        self._start()

    def _start(self) -> None:
        """The part's own state, built once the four above are set."""
