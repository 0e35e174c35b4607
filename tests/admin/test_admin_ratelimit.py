"""The admin API limits its own clients: reads and actions in separate buckets, 429 with
Retry-After when one is empty, 503 for actions while starting or on a standby, and for
everything with the database away; sign-in works everywhere."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from core.admin.api.ratelimit import (
    STREAK_QUIET_SECONDS,
    AdminRateLimit,
    Availability,
    BucketLimits,
    Buckets,
    FailureStreaks,
    Lane,
    RateLimitOptions,
)

SMALL = RateLimitOptions(
    reads=BucketLimits(rate=0.5, burst=2), actions=BucketLimits(rate=1, burst=1)
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def app_with_limits(
    availability: Callable[[], Availability] = lambda: Availability.READY,
    clock: Clock | None = None,
) -> tuple[FastAPI, list[str]]:
    performed: list[str] = []
    app = FastAPI()

    @app.get("/api/overview")
    async def overview() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/api/keys/x/1/retry", status_code=202)
    async def retry() -> dict[str, bool]:
        performed.append("retry")
        return {"ok": True}

    @app.get("/healthz")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(
        AdminRateLimit, options=SMALL, availability=availability,
        monotonic=clock or Clock(), admin_token="right-token",
    )
    return app, performed


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin")


@pytest.mark.parametrize(
    ("elapsed", "expected_wait"),
    [(0.0, 2.0), (1.0, 1.0), (2.0, 0.0)],
)
def test_an_empty_bucket_says_how_long_until_the_next_token(
    elapsed: float, expected_wait: float
) -> None:
    buckets = Buckets(SMALL)
    assert [buckets.take("a", Lane.READS, 0.0) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("a", Lane.READS, elapsed) == pytest.approx(expected_wait)


def test_a_refused_reader_is_told_to_wait_until_the_bucket_is_half_full() -> None:
    buckets = Buckets(RateLimitOptions(reads=BucketLimits(rate=0.5, burst=8, refill_to=4)))
    assert all(buckets.take("a", Lane.READS, 0.0) == 0.0 for _ in range(8))
    assert buckets.take("a", Lane.READS, 0.0) == pytest.approx(8.0)


def test_clients_and_lanes_have_their_own_buckets() -> None:
    buckets = Buckets(SMALL)
    buckets.take("a", Lane.ACTIONS, 0.0)
    assert buckets.take("a", Lane.ACTIONS, 0.0) > 0
    assert buckets.take("b", Lane.ACTIONS, 0.0) == 0.0
    assert buckets.take("a", Lane.READS, 0.0) == 0.0


async def test_polling_too_fast_gets_429_with_retry_after_and_never_blocks_an_action() -> None:
    clock = Clock()
    app, performed = app_with_limits(clock=clock)
    async with client(app) as http:
        answers = [(await http.get("/api/overview")).status_code for _ in range(3)]
        limited = await http.get("/api/overview")
        action = await http.post("/api/keys/x/1/retry")
        health = await http.get("/healthz")
        clock.now += 2.0
        again = await http.get("/api/overview")

    assert answers == [200, 200, 429]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["lane"] == "reads"
    assert action.status_code == 202
    assert performed == ["retry"]
    assert health.status_code == 200
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("availability", "read_status", "action_status"),
    [
        (Availability.STARTING, 200, 503),
        (Availability.STANDBY, 200, 503),
        (Availability.DATABASE_AWAY, 503, 503),
        (Availability.READY, 200, 202),
    ],
)
async def test_503_while_starting_on_a_standby_or_with_the_database_away(
    availability: Availability, read_status: int, action_status: int
) -> None:
    app, performed = app_with_limits(availability=lambda: availability)
    async with client(app) as http:
        read = await http.get("/api/overview")
        action = await http.post("/api/keys/x/1/retry")
    assert (read.status_code, action.status_code) == (read_status, action_status)
    if action_status == 503:
        assert action.headers["Retry-After"] == "2"
        assert performed == []


@pytest.mark.parametrize("availability", list(Availability))
async def test_signing_in_is_never_refused_for_the_daemon_s_state(
    availability: Availability
) -> None:
    app, _ = app_with_limits(availability=lambda: availability)

    @app.post("/login")
    async def login() -> dict[str, bool]:
        return {"ok": True}

    async with client(app) as http:
        assert (await http.post("/login")).status_code == 200


def test_a_failure_streak_is_reported_once_until_it_goes_quiet() -> None:
    streaks = FailureStreaks()
    assert [streaks.failed("a", t) for t in (0.0, 1.0, 2.0)] == [True, False, False]
    assert streaks.failed("b", 2.0) is True
    assert streaks.count("a") == 3
    assert streaks.failed("a", 2.0 + STREAK_QUIET_SECONDS + 1) is True
