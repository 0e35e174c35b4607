"""What every outbound call of one service goes through: breaker, lane limiter, deadline.

``ServiceGuard.call(lane, op, what)`` refuses at once when the circuit is open
(``CircuitOpenError`` with the seconds until half-open), waits for a token in its lane,
runs ``op`` (an adapter's call that raises only ``core.errors`` types) under the in-call
deadline, and feeds the outcome back:

- success, or a needs-attention answer (the service is up) → the breaker counts a success;
- a transient failure (5xx, refused connection, deadline) → the breaker counts a failure;
- a rate limit → the lane limiter pauses (background only, or both when global); the
  breaker learns nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from core.clients.breaker import BreakerConfig, BreakerState, CircuitBreaker, Transition
from core.clients.ratelimit import LaneLimiter, LimiterConfig
from core.clients.service_part import ServicePart
from core.clients.status import ServiceStatus
from core.errors import (
    CircuitOpenError,
    NeedsAttentionError,
    RateLimitedError,
    TransientError,
)
from core.lanes import Lane
from core.observability import get_logger

log = get_logger("core.clients")

T = TypeVar("T")


@dataclass(frozen=True)
class ResilienceConfig:
    """Already multiplied by the time scale."""

    breaker: BreakerConfig
    limiter: LimiterConfig
    call_timeout: float = 15.0  # whole in-call budget, the library's own retries included


class ServiceGuard(ServicePart[ResilienceConfig]):
    def _start(self) -> None:
        self.breaker = CircuitBreaker(self.config.breaker)
        self.limiter = LaneLimiter(self.service, self.config.limiter, self._now, self._sleep)

    async def call(
        self, lane: Lane, op: Callable[[], Awaitable[T]], what: str, cost: int = 1
    ) -> T:
        """``cost``: requests ``op`` sends (one, unless it is known to send more)."""
        self._admit(lane, what)
        cost = max(1, min(cost, self.limiter.most_at_once()))
        taken = 0
        try:
            for _ in range(cost):
                # The lane it waited in: interactive once the engine raised the run.
                lane = await self.limiter.acquire(lane)
                taken += 1
        except BaseException:
            self.limiter.finished(lane, taken)
            self.breaker.on_neutral(self._now())  # frees a half-open probe slot
            raise
        try:
            return await self._run(lane, op, what)
        finally:
            self.limiter.finished(lane, cost)  # a sliding window counts calls from their end

    async def _run(self, lane: Lane, op: Callable[[], Awaitable[T]], what: str) -> T:
        try:
            async with asyncio.timeout(self.config.call_timeout):
                result = await op()
        except TimeoutError:
            error = TransientError(
                f"{self.service} {what}: no answer within {self.config.call_timeout:g}s",
                service=self.service,
            )
            self._failed(lane, error)
            raise error from None
        except RateLimitedError as exc:
            self.breaker.on_rate_limited(self._now())
            if exc.retry_after:
                self.limiter.pause(lane, exc.retry_after, exc.is_global)
            else:
                log.info("client.rate_limited", service=self.service, lane=lane.value,
                         retry_after=None, is_global=exc.is_global, what=what)
            raise
        except NeedsAttentionError:
            self._log(self.breaker.on_success(self._now()), lane)
            raise
        except TransientError as exc:
            self._failed(lane, exc)
            raise
        except BaseException:
            self.breaker.on_neutral(self._now())
            raise
        self._log(self.breaker.on_success(self._now()), lane)
        return result

    def _admit(self, lane: Lane, what: str) -> None:
        retry_after, transition = self.breaker.before_call(self._now())
        self._log(transition, lane)
        if retry_after is not None:
            raise CircuitOpenError(
                f"{self.service} circuit is open after repeated failures; not calling "
                f"{what}; next probe in {retry_after:.2f}s",
                service=self.service, retry_after=retry_after,
            )

    def _failed(self, lane: Lane, error: TransientError) -> None:
        self._log(self.breaker.on_failure(self._now()), lane, error=str(error))

    def _log(self, transition: Transition | None, lane: Lane, **extra: object) -> None:
        if transition is None:
            return
        emit = log.warning if transition.new is BreakerState.OPEN else log.info
        emit(
            "client.breaker_transition", service=self.service, lane=lane.value,
            state=transition.new.value, previous=transition.old.value,
            failures=transition.failures, retry_after=round(transition.retry_after, 3),
            **extra,
        )

    def reset_breaker(self) -> None:
        self._log(self.breaker.reset(self._now()), Lane.INTERACTIVE, reason="operator")

    def status(self) -> ServiceStatus:
        now = self._now()
        remaining = {lane.value: self.limiter.remaining(lane, now) for lane in Lane}
        return ServiceStatus(
            service=self.service,
            breaker_state=self.breaker.state(now).value,
            seconds_until_half_open=self.breaker.seconds_until_half_open(now),
            consecutive_failures=self.breaker.consecutive_failures,
            rate_limits=self.breaker.rate_limits,
            rate_limited_for={lane.value: self.limiter.paused_for(lane, now) for lane in Lane},
            rate_limit_remaining={lane: r for lane, (r, _) in remaining.items()},
            rate_limit_reset_in={lane: s for lane, (_, s) in remaining.items()},
        )
