"""Client-side rate limiting per service, in two lanes (DESIGN §4).

Pure part (``now`` passed in): ``TokenBucket``; ``SlidingWindow``, at most N calls in any
window of a period (Discord counts its global limit so); and ``take_all``, which takes one
token from every gate or from none and says how long to wait.

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
  run that only waits for a token must not keep other keys from starting;
- a background call of an engine run that is raised to interactive (an interactive caller
  now waits for that run: ``core.lanes.run_ask``) leaves the background queue at once and
  waits in the interactive lane (priority inheritance), even if it was already waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from core import metrics
from core.clients.service_part import ServicePart
from core.errors import RateLimitedError
from core.lanes import Lane, LaneAsk, run_ask, slot_back, slot_released
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


    def reset_in(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.available(now)) / self.rate.per_second)

    def end(self, now: float) -> None:
        """A call that took a token has ended: nothing to do for a bucket."""


@dataclass(frozen=True)
class Window:
    """At most ``limit`` calls in any ``period``-second window."""

    limit: int
    period: float

    @property
    def per_second(self) -> float:
        return self.limit / self.period


class SlidingWindow:
    """``Window`` enforced from our side: a call counts from the moment it is let through
    until ``period`` after it ended. The service stamps each request somewhere between the
    two, so no window of the service's can hold more than ``limit`` of ours, however the
    requests bunch on the way; a burst of ``limit`` calls is allowed at once."""

    def __init__(self, window: Window, now: float) -> None:
        self.window = window
        self.capacity = float(window.limit)
        self._in_flight = 0
        self._ended: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._ended and self._ended[0] <= now - self.window.period:
            self._ended.popleft()

    def used(self, now: float) -> int:
        self._expire(now)
        return self._in_flight + len(self._ended)

    def wait_time(self, now: float) -> float:
        over = self.used(now) - self.window.limit + 1
        if over <= 0:
            return 0.0
        if over <= len(self._ended):
            return max(0.0, self._ended[over - 1] + self.window.period - now)
        # Every counted call is still in flight: look again after about one call's share.
        return self.window.period / self.window.limit

    def take(self, now: float) -> None:
        self._expire(now)
        self._in_flight += 1

    def end(self, now: float) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        self._ended.append(now)

    def available(self, now: float) -> float:
        return float(max(0, self.window.limit - self.used(now)))

    def reset_in(self, now: float) -> float:
        self._expire(now)
        if self._in_flight:
            return self.window.period
        return max(0.0, self._ended[-1] + self.window.period - now) if self._ended else 0.0


class Gate(Protocol):
    capacity: float

    def wait_time(self, now: float) -> float: ...

    def take(self, now: float) -> None: ...

    def end(self, now: float) -> None: ...

    def available(self, now: float) -> float: ...

    def reset_in(self, now: float) -> float: ...


def take_all(buckets: Iterable[Gate], now: float) -> float:
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
    service_windows: tuple[Window, ...] = ()  # sliding windows, beside (or instead of) rates

    def tightest(self) -> Rate:
        """The slowest service limit, as a rate whose burst is its whole allowance for a
        window."""
        limits = [*self.service_rates,
                  *(Rate(w.limit, w.period, w.limit) for w in self.service_windows)]
        if not limits:
            raise ValueError("a limiter needs at least one service rate or window")
        return min(limits, key=lambda r: r.per_second)


@dataclass
class _Pause:
    until: float = 0.0
    is_global: bool = False


class LaneLimiter(ServicePart[LimiterConfig]):
    def _start(self) -> None:
        config = self.config
        start = self._now()
        self._service_buckets: list[Gate] = [
            *(TokenBucket(rate, start) for rate in config.service_rates),
            *(SlidingWindow(window, start) for window in config.service_windows),
        ]
        tightest = config.tightest()
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
        reset_in = max(b.reset_in(now) for b in buckets)
        return max(0, remaining), max(0.0, reset_in)

    def most_at_once(self) -> int:
        """The most calls one caller may hold at once (the smallest gate)."""
        return max(1, int(min(g.capacity for g in [*self._service_buckets,
                                                   self._background_bucket])))

    def finished(self, lane: Lane, calls: int = 1) -> None:
        """``calls`` let through by ``acquire`` have ended (answered, failed or given up):
        sliding windows count them until one period from now."""
        now = self._now()
        for gate in self._buckets(lane):
            for _ in range(calls):
                gate.end(now)

    # ---- acquiring ---------------------------------------------------------------------------
    async def acquire(self, lane: Lane) -> Lane:
        """Wait for a token in ``lane``; returns the lane it was taken in (interactive for a
        background call whose run was raised, before or while it waited)."""
        ask = run_ask()
        if ask is not None:
            lane = ask.lane_for(lane)
        if lane is Lane.BACKGROUND and ask is not None:
            if await self._background_unless_raised(ask):
                return Lane.BACKGROUND
            lane = Lane.INTERACTIVE
            log.debug("client.lane_raised", service=self.service)
        await self._acquire_counted(lane)
        return lane

    async def _background_unless_raised(self, ask: LaneAsk) -> bool:
        """Wait for a background token until the run's ask is raised: True when the token
        was taken, False when the run was raised first (nothing taken, the slot held)."""
        if self._try_now(Lane.BACKGROUND):
            return True  # no wait: no task to race (the common case, and the cheap one)
        loop = asyncio.get_running_loop()
        raised: asyncio.Future[None] = loop.create_future()
        undo = ask.on_raise(_resolver(raised))
        waiting = loop.create_task(self._acquire(Lane.BACKGROUND))
        given_up: asyncio.CancelledError | None = None
        try:
            await asyncio.wait({waiting, raised}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError as exc:
            given_up = exc  # our caller gave up: so does the wait, once it has settled
        finally:
            undo()
        waiting.cancel()
        while not waiting.done():
            # Let it settle (take the run's slot back) before anyone releases that slot.
            try:
                await asyncio.wait({waiting})
            except asyncio.CancelledError as exc:
                given_up = exc
        took = not waiting.cancelled() and waiting.exception() is None
        if given_up is not None:
            if took:
                self.finished(Lane.BACKGROUND)  # the token it took goes unused
            raise given_up
        if not waiting.cancelled():
            waiting.result()  # a token taken in between (or the pause it raised)
            return True
        # Cut short, maybe while it took the run's slot back after a token wait.
        await slot_back()
        return False

    def _try_now(self, lane: Lane) -> bool:
        """Take a token without waiting, when ``_acquire`` would."""
        now = self._now()
        if self.paused_for(lane, now) > 0.0:
            return False
        if lane is Lane.BACKGROUND and self._interactive_waiting:
            return False
        return take_all(self._buckets(lane), now) == 0.0

    async def _acquire_counted(self, lane: Lane) -> None:
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

    def _buckets(self, lane: Lane) -> list[Gate]:
        if lane is Lane.BACKGROUND:
            return [*self._service_buckets, self._background_bucket]
        return list(self._service_buckets)

    def _log_wait(self, lane: Lane, wait: float, reason: str) -> None:
        # Bucket waits are routine under load; server pauses are worth a line each.
        emit = log.info if reason == "server_pause" else log.debug
        metrics.rate_limit_wait(self.service, lane.value)
        emit("client.rate_limit_wait", service=self.service, lane=lane.value,
             retry_after=round(wait, 4), reason=reason)


def _resolver(future: asyncio.Future[None]) -> Callable[[], None]:
    def resolve() -> None:
        if not future.done():
            future.set_result(None)
    return resolve
