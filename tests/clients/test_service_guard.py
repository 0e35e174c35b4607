"""ServiceGuard with stand-in operations: what it logs, and how outcomes feed the breaker."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from core.clients.breaker import BreakerConfig
from core.clients.discord_adapter import DiscordAdapter
from core.clients.ratelimit import LimiterConfig, Rate
from core.clients.resilience import ResilienceConfig, ServiceGuard
from core.errors import CircuitOpenError, NeedsAttentionError, RateLimitedError, TransientError
from core.lanes import Lane
from core.sandbox import Sandbox
from tests.clients.conftest import TEXT

CONFIG = ResilienceConfig(
    breaker=BreakerConfig(failure_threshold=2, reset_timeout=60.0),
    limiter=LimiterConfig((Rate(1000, 1.0),), max_wait=0.01),
    call_timeout=1.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def failing(error: Exception):  # type: ignore[no-untyped-def]
    async def op() -> None:
        raise error
    return op


async def test_each_breaker_transition_is_one_structured_event() -> None:
    clock = Clock()
    guard = ServiceGuard("svc", CONFIG, clock)

    with capture_logs() as logs:
        for _ in range(2):
            with pytest.raises(TransientError):
                await guard.call(Lane.BACKGROUND, failing(TransientError("503")), "read")

    transitions = [e for e in logs if e["event"] == "client.breaker_transition"]
    assert len(transitions) == 1
    assert transitions[0] | {"error": None} == transitions[0] | {
        "service": "svc", "lane": "background", "state": "open", "previous": "closed",
        "failures": 2, "retry_after": 60.0, "error": None}


async def test_rate_limits_and_needs_attention_do_not_open_the_circuit() -> None:
    guard = ServiceGuard("svc", CONFIG, Clock())

    for error in (RateLimitedError("429", retry_after=0.001), NeedsAttentionError("404"),
                  RateLimitedError("429"), NeedsAttentionError("403")):
        with pytest.raises(type(error)):
            await guard.call(Lane.INTERACTIVE, failing(error), "write")

    assert guard.status().breaker_state == "closed"


async def test_the_circuit_open_error_counts_down_to_half_open() -> None:
    clock = Clock()
    guard = ServiceGuard("svc", CONFIG, clock)
    for _ in range(2):
        with pytest.raises(TransientError):
            await guard.call(Lane.INTERACTIVE, failing(TransientError("503")), "read")
    clock.now = 45.0

    with pytest.raises(CircuitOpenError) as caught:
        await guard.call(Lane.INTERACTIVE, failing(TransientError("unreached")), "read")

    assert caught.value.retry_after == 15.0
    assert guard.status().to_json()["seconds_until_half_open"] == 15.0


async def test_the_token_never_reaches_the_logs(discord_client: DiscordAdapter,
                                                sandbox: Sandbox) -> None:
    sandbox.discord.inject("revoked_token", count=1)
    with capture_logs() as logs:
        with pytest.raises(NeedsAttentionError):
            await discord_client.channel_overwrites(TEXT, Lane.INTERACTIVE)
        await discord_client.probe()  # the token works again
        await discord_client.channel_overwrites(TEXT, Lane.INTERACTIVE)

    assert logs
    assert sandbox.discord_bot_token not in repr(logs)
