"""A circuit breaker per external service: a pure state machine, time passed in as ``now``.

    closed ──N consecutive transient failures──▶ open ──reset_timeout──▶ half-open
       ▲                                          ▲                        │ one probe
       └──────────── probe succeeds ──────────────┼──── probe fails ───────┘

Only transient failures (5xx, timeouts, refused connections) count towards opening. A
needs-attention answer (401/403/404) proves the service is up, so it counts as a success.
A rate limit (a 429, or Google's quota 403 in either envelope) says nothing about health:
it never opens the circuit, but the breaker counts it (``rate_limits``, since the last
success) so an operator sees a service refusing for quota beside one failing.

``now`` is seconds on any monotonic-enough scale (the caller reads its clock once per
call and passes it in), so tests drive the breaker with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    reset_timeout: float = 30.0  # seconds open before a probe is allowed
    # What a caller refused while the probe is in flight is told to wait.
    probe_retry_after: float = 1.0


@dataclass(frozen=True)
class Transition:
    old: BreakerState
    new: BreakerState
    failures: int
    retry_after: float  # seconds until half-open (0 unless the new state is open)


class CircuitBreaker:
    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self._rate_limits = 0

    # ---- reading -------------------------------------------------------------------------
    def state(self, now: float) -> BreakerState:
        """The state as of ``now`` (open turns half-open once the reset timeout passed)."""
        if self._state is BreakerState.OPEN and now >= self._half_open_at:
            return BreakerState.HALF_OPEN
        return self._state

    def seconds_until_half_open(self, now: float) -> float:
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._half_open_at - now)

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def rate_limits(self) -> int:
        """Rate-limit answers since the last success."""
        return self._rate_limits

    @property
    def _half_open_at(self) -> float:
        return self._opened_at + self.config.reset_timeout

    # ---- deciding --------------------------------------------------------------------------
    def before_call(self, now: float) -> tuple[float | None, Transition | None]:
        """``(None, t)`` when the call may go ahead, else ``(retry_after, t)``.

        ``t`` is the open → half-open transition when this call became the probe.
        """
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return None, None
        if state is BreakerState.OPEN:
            return self.seconds_until_half_open(now), None
        transition = None
        if self._state is BreakerState.OPEN:
            transition = self._move(BreakerState.HALF_OPEN, now)
        probe_stuck = (
            self._probe_started is not None
            and now - self._probe_started >= self.config.reset_timeout
        )
        if self._probe_started is None or probe_stuck:
            self._probe_started = now
            return None, transition
        return self.config.probe_retry_after, transition

    def on_success(self, now: float) -> Transition | None:
        self._failures = 0
        self._rate_limits = 0
        self._probe_started = None
        if self._state is BreakerState.CLOSED:
            return None
        return self._move(BreakerState.CLOSED, now)

    def on_failure(self, now: float) -> Transition | None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.config.failure_threshold
        ):
            self._probe_started = None
            self._opened_at = now
            return self._move(BreakerState.OPEN, now)
        if self._state is BreakerState.OPEN:
            # A call that started before the breaker opened failed late: stay open.
            return None
        return None

    def reset(self, now: float) -> Transition | None:
        """An operator closed the circuit by hand: the next call goes ahead."""
        self._failures = 0
        self._probe_started = None
        if self._state is BreakerState.CLOSED:
            return None
        return self._move(BreakerState.CLOSED, now)

    def on_neutral(self, now: float) -> None:
        """The call ended without saying anything about health (cancelled, say)."""
        self._probe_started = None

    def on_rate_limited(self, now: float) -> None:
        """The service refused for quota: counted, yet neither a failure nor a success."""
        self._rate_limits += 1
        self._probe_started = None

    def _move(self, new: BreakerState, now: float) -> Transition:
        old, self._state = self._state, new
        retry_after = self.seconds_until_half_open(now) if new is BreakerState.OPEN else 0.0
        return Transition(old, new, self._failures, retry_after)
