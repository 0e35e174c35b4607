"""Client-side rate limiting per service, in two lanes (DESIGN §4).

Pure part: ``TokenBucket`` (``now`` passed in) and ``take_all``, which takes one token from
every bucket or from none and says how long to wait.

``LaneLimiter`` carries those decisions out with real sleeps:

- every call takes a token from the service buckets (set below the documented limits);
- a background call also takes one from the background share bucket, so background work
  can never use more than its share, and it waits while any interactive call is waiting;
- a server pause (a 429 the library could not absorb) stops only the lane that hit it,
  unless the service said the limit is global, which stops both; an interactive 429 also
  holds background back, since background yields first;
- a pause longer than ``max_wait`` is not waited out inside the call: ``acquire`` raises
  ``RateLimitedError(retry_after)`` so the engine schedules a retry instead of holding a task;
- every wait gives the engine's run slot back meanwhile (``core.lanes.slot_released``): a
  run that only waits for a token must not keep other keys from starting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from core.errors import RateLimitedError
from core.lanes import Lane, slot_released
from core.observability import get_logger

log = get_logger("core.clients.ratelimit")


@dataclass(frozen=True)
class Rate:
    """``limit`` calls per ``period`` seconds; the bucket holds at most ``burst`` tokens."""

    limit: float
    period: float
    burst: float | None = None

    @property
    def per_second(self) -> float:
        return self.limit / self.period


class TokenBucket:
    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.capacity = rate.burst if rate.burst is not None else max(1.0, rate.limit)
        self._tokens = self.capacity
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate.per_second)
        self._updated = max(self._updated, now)

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0.0 when one is there now)."""
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.rate.per_second

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1.0

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens


def take_all(buckets: Iterable[TokenBucket], now: float) -> float:
    """Take one token from each bucket and return 0.0, or take none and return the wait."""
    buckets = list(buckets)
    wait = max((b.wait_time(now) for b in buckets), default=0.0)
    if wait > 0.0:
        return wait
    for bucket in buckets:
        bucket.take(now)
    return 0.0


@dataclass(frozen=True)
class LimiterConfig:
    service_rates: tuple[Rate, ...]
    background_share: float = 0.5  # fraction of the tightest service rate background may use
    max_wait: float = 5.0  # longest server pause waited out inside a call


@dataclass
class _Pause:
    until: float = 0.0
    is_global: bool = False


class LaneLimiter:
    def __init__(
        self,
        service: str,
        config: LimiterConfig,
        now: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.config = config
        self._now = now
        self._sleep = sleep
        start = now()
        self._service_buckets = [TokenBucket(rate, start) for rate in config.service_rates]
        tightest = min(config.service_rates, key=lambda r: r.per_second)
        share = config.background_share
        self._background_bucket = TokenBucket(
            Rate(tightest.limit * share, tightest.period,
                 max(1.0, (tightest.burst or tightest.limit) * share)),
            start,
        )
        self._pauses = {Lane.INTERACTIVE: _Pause(), Lane.BACKGROUND: _Pause()}
        self._interactive_waiting = 0
        self._interactive_idle = asyncio.Event()
        self._interactive_idle.set()
        self._turns = {Lane.INTERACTIVE: asyncio.Lock(), Lane.BACKGROUND: asyncio.Lock()}

    # ---- pauses ------------------------------------------------------------------------------
    def pause(self, lane: Lane, retry_after: float, is_global: bool) -> None:
        """The service said wait ``retry_after`` seconds (a 429 seen in ``lane``)."""
        until = self._now() + retry_after
        # A route limit holds background back (whichever lane hit it); interactive stops
        # only when the service says the limit is global.
        lanes = [Lane.INTERACTIVE, Lane.BACKGROUND] if is_global else [Lane.BACKGROUND]
        for paused in lanes:
            if until > self._pauses[paused].until:
                self._pauses[paused] = _Pause(until, is_global)
        log.info(
            "client.rate_limit_pause", service=self.service, lane=lane.value,
            paused_lanes=[p.value for p in lanes], retry_after=round(retry_after, 3),
            is_global=is_global,
        )

    def paused_for(self, lane: Lane, now: float | None = None) -> float:
        now = self._now() if now is None else now
        return max(0.0, self._pauses[lane].until - now)

    def remaining(self, lane: Lane, now: float | None = None) -> tuple[int, float]:
        """Whole calls ``lane`` may make at once now, and seconds until its buckets are full."""
        now = self._now() if now is None else now
        buckets = list(self._service_buckets)
        if lane is Lane.BACKGROUND:
            buckets.append(self._background_bucket)
        remaining = min(int(b.available(now)) for b in buckets)
        reset_in = max((b.capacity - b.available(now)) / b.rate.per_second for b in buckets)
        return max(0, remaining), max(0.0, reset_in)

    # ---- acquiring ---------------------------------------------------------------------------
    async def acquire(self, lane: Lane) -> None:
        if lane is Lane.INTERACTIVE:
            self._interactive_waiting += 1
            self._interactive_idle.clear()
        try:
            await self._acquire(lane)
        finally:
            if lane is Lane.INTERACTIVE:
                self._interactive_waiting -= 1
                if self._interactive_waiting == 0:
                    self._interactive_idle.set()

    async def _acquire(self, lane: Lane) -> None:
        while True:
            now = self._now()
            paused = self.paused_for(lane, now)
            if paused > self.config.max_wait:
                pause = self._pauses[lane]
                raise RateLimitedError(
                    f"{self.service} is rate limited in the {lane.value} lane for "
                    f"{paused:.2f}s more" + (" (global limit)" if pause.is_global else ""),
                    service=self.service, retry_after=paused, is_global=pause.is_global,
                )
            if paused > 0.0:
                self._log_wait(lane, paused, "server_pause")
                async with slot_released():
                    await self._sleep(paused)
                continue
            if lane is Lane.BACKGROUND and self._interactive_waiting:
                async with slot_released():
                    await self._interactive_idle.wait()
                continue
            wait = take_all(self._buckets(lane), now)
            if wait == 0.0:
                return
            self._log_wait(lane, wait, "client_bucket")
            async with slot_released(), self._turns[lane]:
                # One waiter per lane sleeps on the bucket, the rest queue on the lock:
                # hundreds of runs waiting for tokens must not all wake for each one.
                now = self._now()
                await self._sleep(max((b.wait_time(now) for b in self._buckets(lane)),
                                      default=0.0))

    def _buckets(self, lane: Lane) -> list[TokenBucket]:
        if lane is Lane.BACKGROUND:
            return [*self._service_buckets, self._background_bucket]
        return list(self._service_buckets)

    def _log_wait(self, lane: Lane, wait: float, reason: str) -> None:
        # Bucket waits are routine under load; server pauses are worth a line each.
        emit = log.info if reason == "server_pause" else log.debug
        emit("client.rate_limit_wait", service=self.service, lane=lane.value,
             retry_after=round(wait, 4), reason=reason)
