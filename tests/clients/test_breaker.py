"""The breaker as a table of (event, time) → state, with plain numbers for time."""

from __future__ import annotations

import pytest

from core.clients.breaker import BreakerConfig, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
CONFIG = BreakerConfig(failure_threshold=3, reset_timeout=10.0, probe_retry_after=1.0)


def run(events: list[tuple[str, float]]) -> CircuitBreaker:
    breaker = CircuitBreaker(CONFIG)
    for event, now in events:
        if event == "call":
            breaker.before_call(now)
        else:
            getattr(breaker, f"on_{event}")(now)
    return breaker


@pytest.mark.parametrize(
    ("events", "now", "state"),
    [
        ([], 0, CLOSED),
        ([("failure", 0), ("failure", 1)], 2, CLOSED),
        ([("failure", 0), ("failure", 1), ("failure", 2)], 3, OPEN),
        ([("failure", 0), ("failure", 1), ("success", 2), ("failure", 3)], 4, CLOSED),
        ([("failure", 0), ("failure", 1), ("failure", 2)], 12, HALF),
        ([("failure", 0), ("failure", 1), ("failure", 2), ("call", 12), ("success", 12)], 13,
         CLOSED),
        ([("failure", 0), ("failure", 1), ("failure", 2), ("call", 12), ("failure", 12)], 13,
         OPEN),
        ([("failure", 0), ("failure", 1), ("failure", 2), ("call", 12), ("failure", 12)], 22,
         HALF),
    ],
)
def test_state_after_events(events: list[tuple[str, float]], now: float,
                            state: BreakerState) -> None:
    assert run(events).state(now) is state


def test_open_refuses_with_the_seconds_until_half_open() -> None:
    breaker = run([("failure", 0), ("failure", 1), ("failure", 2)])

    assert breaker.before_call(5.0) == (7.0, None)
    assert breaker.seconds_until_half_open(5.0) == 7.0


def test_half_open_lets_one_probe_through_and_holds_the_rest_briefly() -> None:
    breaker = run([("failure", 0), ("failure", 1), ("failure", 2)])

    allowed, transition = breaker.before_call(12.0)
    second, _ = breaker.before_call(12.1)

    assert allowed is None
    assert transition is not None
    assert (transition.old, transition.new) == (OPEN, HALF)
    assert second == CONFIG.probe_retry_after


def test_a_probe_that_never_reports_back_does_not_wedge_the_breaker() -> None:
    breaker = run([("failure", 0), ("failure", 1), ("failure", 2), ("call", 12)])

    assert breaker.before_call(22.0)[0] is None


def test_a_neutral_outcome_frees_the_probe_slot() -> None:
    breaker = run([("failure", 0), ("failure", 1), ("failure", 2), ("call", 12),
                   ("neutral", 12)])

    assert breaker.before_call(12.5)[0] is None


def test_rate_limits_are_counted_but_never_open_the_circuit() -> None:
    breaker = run([("rate_limited", t) for t in range(10)])

    assert (breaker.state(10), breaker.consecutive_failures, breaker.rate_limits) == (
        CLOSED, 0, 10)
    breaker.on_success(11)
    assert breaker.rate_limits == 0


def test_a_rate_limited_probe_frees_the_probe_slot() -> None:
    breaker = run([("failure", 0), ("failure", 1), ("failure", 2), ("call", 12),
                   ("rate_limited", 12)])

    assert breaker.before_call(12.5)[0] is None
    assert breaker.rate_limits == 1


def test_transitions_carry_the_failure_count_and_retry_after() -> None:
    breaker = run([("failure", 0), ("failure", 1)])

    transition = breaker.on_failure(2.0)

    assert transition is not None
    assert (transition.old, transition.new, transition.failures) == (CLOSED, OPEN, 3)
    assert transition.retry_after == 10.0
