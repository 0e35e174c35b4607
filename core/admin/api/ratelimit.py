"""The admin API limits its own clients, and says when it cannot serve.

Two token buckets per client, one for reads (GET/HEAD) and one for actions (every other
method), so a dashboard that polls too fast is slowed down without ever blocking an
operator's retry click. An empty bucket answers 429 with ``Retry-After`` (whole seconds,
rounded up). Before the buckets, an availability check answers 503 with ``Retry-After``:

- ``starting``: the daemon has not finished starting (every limited request);
- ``standby``: this daemon stands by for another one (actions only; reads are served
  from the shared database);
- ``database_away``: the database does not answer (every limited request).

Only the paths under ``LIMITED_PREFIXES`` are limited; health, metrics, the page itself
and its static files are not. Errors are ``application/problem+json``.

The decision (``Buckets.take``, ``refusal``) is pure and takes ``now``; the ASGI
middleware only reads the clock once per request and writes the answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from core.admin.api.faults import AdminFaults, InjectedFault

# The dashboard's session cookie (core/admin/web/sessions.py reads the same name).
SESSION_COOKIE = "groupsync_session"
LIMITED_PREFIXES = ("/api/", "/login")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Clients remembered at once; the least recently seen is forgotten first.
MAX_CLIENTS = 1024


class Lane(StrEnum):
    READS = "reads"
    ACTIONS = "actions"


class Availability(StrEnum):
    READY = "ready"
    STARTING = "starting"
    STANDBY = "standby"
    DATABASE_AWAY = "database_away"


@dataclass(frozen=True)
class BucketLimits:
    """``rate`` tokens per second refill a bucket holding at most ``burst`` tokens.

    A refused client is told to come back when ``refill_to`` tokens are there: for reads
    that is half the burst, so a poller that overran comes back to a few answers instead
    of one answer and another 429 (and slows down, as the dashboard does).
    """

    rate: float
    burst: float
    refill_to: float = 1.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a bucket needs rate > 0 and burst >= 1")
        if not 1 <= self.refill_to <= self.burst:
            raise ValueError("refill_to must be between 1 and burst")


@dataclass(frozen=True)
class RateLimitOptions:
    reads: BucketLimits = BucketLimits(rate=10.0, burst=60, refill_to=30)
    actions: BucketLimits = BucketLimits(rate=5.0, burst=30)
    # Retry-After on a 503 (seconds): how soon a client should look again.
    unavailable_retry_after: int = 2


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Buckets:
    """Token buckets per (client, lane). ``take`` returns 0 when a token was taken, else
    the seconds until one will be there."""

    def __init__(self, options: RateLimitOptions) -> None:
        self.options = options
        self._buckets: OrderedDict[tuple[str, Lane], _Bucket] = OrderedDict()

    def limits(self, lane: Lane) -> BucketLimits:
        return self.options.reads if lane is Lane.READS else self.options.actions

    def take(self, client: str, lane: Lane, now: float) -> float:
        limits = self.limits(lane)
        key = (client, lane)
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=limits.burst, updated=now)
        self._buckets[key] = bucket  # most recently seen last
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(limits.burst, bucket.tokens + elapsed * limits.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (limits.refill_to - bucket.tokens) / limits.rate


def lane_of(method: str) -> Lane:
    return Lane.READS if method.upper() in READ_METHODS else Lane.ACTIONS


def is_limited(path: str) -> bool:
    return path.startswith(LIMITED_PREFIXES)


@dataclass(frozen=True)
class Refusal:
    status: int
    retry_after: int
    title: str
    detail: str
    lane: Lane

    def body(self) -> bytes:
        return json.dumps({
            "type": "about:blank", "title": self.title, "status": self.status,
            "detail": self.detail, "lane": self.lane.value, "retry_after": self.retry_after,
        }).encode()


def unavailable(availability: Availability, lane: Lane, retry_after: int) -> Refusal | None:
    """The 503 this request gets in this state, or None when it may go on."""
    if availability is Availability.READY:
        return None
    if availability is Availability.STANDBY and lane is Lane.READS:
        return None
    details = {
        Availability.STARTING: "the daemon is still starting",
        Availability.STANDBY: "this daemon is a standby; actions run on the active daemon",
        Availability.DATABASE_AWAY: "the database does not answer",
    }
    return Refusal(503, retry_after, "Service unavailable", details[availability], lane)


def too_many(lane: Lane, wait: float) -> Refusal:
    seconds = max(1, math.ceil(wait))
    return Refusal(
        429, seconds, "Too many requests",
        f"the admin API's {lane.value} limit was reached; try again in {seconds} s", lane,
    )


class AdminRateLimit:
    """ASGI middleware: 503 when unavailable, 429 when a client's bucket is empty."""

    def __init__(
        self,
        app: ASGIApp,
        options: RateLimitOptions | None = None,
        availability: Callable[[], Availability] = lambda: Availability.READY,
        monotonic: Callable[[], float] = time.monotonic,
        faults: AdminFaults | None = None,
    ) -> None:
        self.app = app
        self.faults = faults
        self.buckets = Buckets(options or RateLimitOptions())
        self.availability = availability
        self.monotonic = monotonic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        lane = lane_of(scope["method"])
        fault = self.faults.take(lane) if self.faults is not None else None
        if fault is not None:
            await self._inject(fault, scope, receive, send)
            return
        refusal = self.decide(scope, lane)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await _answer(refusal, send)

    def decide(self, scope: Scope, lane: Lane) -> Refusal | None:
        refusal = unavailable(
            self.availability(), lane, self.buckets.options.unavailable_retry_after
        )
        if refusal is not None:
            return refusal
        wait = self.buckets.take(_client(scope), lane, self.monotonic())
        return too_many(lane, wait) if wait > 0 else None

    async def _inject(self, fault: InjectedFault, scope: Scope, receive: Receive,
                      send: Send) -> None:
        if fault.after:
            async def swallow(_message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
        refusal = (
            Refusal(503, fault.retry_after, "Service unavailable", "injected fault", fault.lane)
            if fault.status == 503
            else too_many(fault.lane, fault.retry_after)
        )
        await _answer(refusal, send)


def _client(scope: Scope) -> str:
    """Who is asking: the address plus the session cookie or the bearer scheme, so two
    browsers (or a browser and a script) on one host do not share a bucket."""
    client: Any = scope.get("client")
    host = str(client[0]) if client else "unknown"
    headers = dict(scope.get("headers") or [])
    cookie = headers.get(b"cookie", b"").decode("latin-1")
    for part in cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return f"{host} session {hashlib.sha256(value.encode()).hexdigest()[:16]}"
    return f"{host} bearer" if b"authorization" in headers else host


async def _answer(refusal: Refusal, send: Send) -> None:
    body = refusal.body()
    await send({
        "type": "http.response.start",
        "status": refusal.status,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(refusal.retry_after).encode()),
            (b"x-ratelimit-lane", refusal.lane.value.encode()),
        ],
    })
    await send({"type": "http.response.body", "body": body})
