"""The admin API limits its own clients, and says when it cannot serve.

Buckets are keyed on what a client cannot choose: its peer address, plus the session the
server issued and still holds (a made-up or expired ``groupsync_session`` cookie counts
for nothing) or the bearer token when it is the right one. An operator so identified has
two token buckets, one for reads (GET/HEAD) and one for actions (every other method), so
a dashboard that polls too fast is slowed down without ever blocking an operator's retry
click. A request without valid credentials shares its address's buckets, and every 401
it earns takes a token from that address's small *failed-auth* bucket: once it is empty,
unauthenticated requests from the address (wrong ``POST /login``, wrong Bearer tokens)
answer 429 with ``Retry-After`` before any check runs, while a signed-in operator on the
same address is not slowed. Each streak of failures is logged once, with the address and
never the presented token.

Before the buckets, an availability check answers 503 with ``Retry-After``:

- ``starting``: the daemon has not finished starting (actions only);
- ``standby``: this daemon stands by for another one (actions only; reads are served
  from the shared database);
- ``database_away``: the database does not answer (every limited request).

Signing in and out (``/login``, ``/logout``) needs no database and no leadership: it works
on every daemon. Only the paths under ``LIMITED_PREFIXES`` are limited; health, metrics,
the page itself and its static files are not. Errors are ``application/problem+json``,
except on the sign-in form, which a browser shows: there they are a small HTML page.

The decisions (``Buckets``, ``unavailable``, ``FailureStreaks``) are pure and take ``now``;
the ASGI middleware only reads the clock once per request and writes the answer.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.observability import get_logger

log = get_logger("groupsync.admin.api")

# The dashboard's session cookie (core/admin/web/sessions.py reads the same name).
SESSION_COOKIE = "groupsync_session"
LIMITED_PREFIXES = ("/api/", "/login")
# The dashboard's forms: a browser renders their answer, and they work on every daemon.
SIGN_IN_PATHS = frozenset({"/login", "/logout"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Clients remembered at once; the least recently seen is forgotten first.
MAX_CLIENTS = 1024


class Lane(StrEnum):
    READS = "reads"
    ACTIONS = "actions"
    FAILED_AUTH = "failed_auth"  # per address: requests that earned a 401


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
    # Ten wrong tokens in a burst, then one every five seconds.
    failed_auth: BucketLimits = BucketLimits(rate=0.2, burst=10)
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
        return {Lane.READS: self.options.reads, Lane.ACTIONS: self.options.actions,
                Lane.FAILED_AUTH: self.options.failed_auth}[lane]

    def take(self, client: str, lane: Lane, now: float) -> float:
        return self._use(client, lane, now, take=True)

    def wait(self, client: str, lane: Lane, now: float) -> float:
        """Like ``take``, without taking: the seconds until a token is there (0: now)."""
        return self._use(client, lane, now, take=False)

    def _use(self, client: str, lane: Lane, now: float, *, take: bool) -> float:
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
            if take:
                bucket.tokens -= 1
            return 0.0
        return (limits.refill_to - bucket.tokens) / limits.rate


# A streak of failed authentications from one address ends after this long without one.
STREAK_QUIET_SECONDS = 300.0


class FailureStreaks:
    """Which addresses are failing to authenticate: ``failed`` is True for the first
    failure of a streak (the one to log), False for the rest of it."""

    def __init__(self) -> None:
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def failed(self, host: str, now: float) -> bool:
        last, count = self._last.pop(host, (-math.inf, 0))
        fresh = now - last > STREAK_QUIET_SECONDS
        self._last[host] = (now, 1 if fresh else count + 1)
        while len(self._last) > MAX_CLIENTS:
            self._last.popitem(last=False)
        return fresh

    def count(self, host: str) -> int:
        return self._last.get(host, (0.0, 0))[1]


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
    availability: str | None = None  # for a 503: starting, standby or database_away

    def body(self) -> bytes:
        extra = {"availability": self.availability} if self.availability else {}
        return json.dumps({
            "type": "about:blank", "title": self.title, "status": self.status,
            "detail": self.detail, "lane": self.lane.value, "retry_after": self.retry_after,
            **extra,
        }).encode()

    def page(self) -> bytes:
        """The same refusal as a page a browser shows (the sign-in form posts here)."""
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · '
            'groupsync</title><link rel="stylesheet" href="/dashboard/static/dashboard.css">'
            '</head><body><main id="main" class="login"><h1>groupsync dashboard</h1>'
            f'<p class="error" role="alert" id="login-error"><strong>Not signed in:</strong> '
            f'{html.escape(self.detail)}</p><p><a href="/login" id="login-again">Back to '
            'sign-in</a></p></main></body></html>'
        ).encode()


def unavailable(availability: Availability, lane: Lane, retry_after: int,
                path: str = "/api/") -> Refusal | None:
    """The 503 this request gets in this state, or None when it may go on. Signing in
    and out work everywhere; reads need only the database; actions need the leader."""
    if availability is Availability.READY or path in SIGN_IN_PATHS:
        return None
    if availability is not Availability.DATABASE_AWAY and lane is Lane.READS:
        return None
    details = {
        Availability.STARTING: "the daemon is still starting; actions run once it leads",
        Availability.STANDBY: "this daemon is a standby; actions run on the active daemon",
        Availability.DATABASE_AWAY: "the database does not answer",
    }
    return Refusal(503, retry_after, "Service unavailable", details[availability], lane,
                   availability.value)


def too_many(lane: Lane, wait: float) -> Refusal:
    seconds = max(1, math.ceil(wait))
    what = ("too many failed sign-ins or wrong tokens from this address"
            if lane is Lane.FAILED_AUTH else f"the admin API's {lane.value} limit was reached")
    return Refusal(429, seconds, "Too many requests", f"{what}; try again in {seconds} s", lane)


@dataclass(frozen=True)
class Client:
    host: str
    bucket: str  # the key of its read and action buckets
    authenticated: bool  # a session the server holds, or the right bearer token


class AdminRateLimit:
    """ASGI middleware: 503 when unavailable, 429 when a client's bucket is empty."""

    def __init__(
        self,
        app: ASGIApp,
        options: RateLimitOptions | None = None,
        availability: Callable[[], Availability] = lambda: Availability.READY,
        monotonic: Callable[[], float] = time.monotonic,
        session_held: Callable[[str], bool] = lambda _session_id: False,
        admin_token: str | None = None,
    ) -> None:
        self.app = app
        self.buckets = Buckets(options or RateLimitOptions())
        self.availability = availability
        self.monotonic = monotonic
        self.session_held = session_held
        self.admin_token = admin_token
        self.streaks = FailureStreaks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        lane = lane_of(scope["method"])
        client = identify(scope, self.session_held, self.admin_token)
        now = self.monotonic()
        refusal = self.decide(scope, lane, client, now)
        if refusal is not None:
            await _answer(refusal, send, html_page=scope["path"] in SIGN_IN_PATHS)
            return
        if client.authenticated:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if status == 401:
            self.failed(scope, client, self.monotonic())

    def decide(self, scope: Scope, lane: Lane, client: Client, now: float) -> Refusal | None:
        refusal = unavailable(self.availability(), lane,
                              self.buckets.options.unavailable_retry_after, scope["path"])
        if refusal is not None:
            return refusal
        if not client.authenticated:
            wait = self.buckets.wait(client.host, Lane.FAILED_AUTH, now)
            if wait > 0:
                return too_many(Lane.FAILED_AUTH, wait)
        wait = self.buckets.take(client.bucket, lane, now)
        return too_many(lane, wait) if wait > 0 else None

    def failed(self, scope: Scope, client: Client, now: float) -> None:
        """A 401: one token from the address's failed-auth bucket, one line per streak."""
        self.buckets.take(client.host, Lane.FAILED_AUTH, now)
        if self.streaks.failed(client.host, now):
            headers = dict(scope.get("headers") or [])
            presented = ("bearer token" if b"authorization" in headers
                         else "sign-in token" if scope["path"] == "/login" else "none")
            log.warning("admin_auth_failed", client=client.host, path=scope["path"],
                        credentials=presented,
                        note="first failure of a streak; the rest are not logged")


def identify(scope: Scope, session_held: Callable[[str], bool],
             admin_token: str | None) -> Client:
    """Who is asking, from what the client cannot make up: its address, and a session
    the server holds or the right bearer token (then each has its own buckets)."""
    peer: Any = scope.get("client")
    host = str(peer[0]) if peer else "unknown"
    headers = dict(scope.get("headers") or [])
    cookie = headers.get(b"cookie", b"").decode("latin-1")
    for part in cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value and session_held(value):
            digest = hashlib.sha256(value.encode()).hexdigest()[:16]
            return Client(host, f"{host} session {digest}", True)
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if admin_token and scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), admin_token.encode()
    ):
        return Client(host, f"{host} bearer", True)
    return Client(host, host, False)


async def _answer(refusal: Refusal, send: Send, *, html_page: bool = False) -> None:
    body = refusal.page() if html_page else refusal.body()
    kind = b"text/html; charset=utf-8" if html_page else b"application/problem+json"
    await send({
        "type": "http.response.start",
        "status": refusal.status,
        "headers": [
            (b"content-type", kind),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(refusal.retry_after).encode()),
            (b"x-ratelimit-lane", refusal.lane.value.encode()),
            (b"cache-control", b"no-store"),
        ],
    })
    await send({"type": "http.response.body", "body": body})
