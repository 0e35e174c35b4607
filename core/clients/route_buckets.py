"""Discord's per-route rate-limit buckets, learnt from the ``X-RateLimit-*`` headers.

Discord limits each route per top-level resource ("major parameter": a channel, a guild)
in buckets it names in ``X-RateLimit-Bucket`` (several routes may share one, e.g. setting
and deleting a channel's overwrites), and reports ``Limit``, ``Remaining`` and
``Reset-After`` on every answer. ``RouteBuckets`` lets a call through only while its
bucket has a request to spare, counting the calls still in flight, and otherwise waits
for the reset with the run's slot given back (``core.lanes.slot_released``). A bucket whose
name is not known yet lets one call through at a time until the first answer describes
it, as discord.py does (a named bucket has the same limit on every channel).
discord.py's own bucket handling is switched off: it sleeps inside the call that used the
last request of a bucket, holding the run for the whole reset.

Bookkeeping on a clock it is given, and one async ``acquire`` that waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from core.errors import RateLimitedError
from core.lanes import slot_released

KEEP = 4096  # buckets kept before idle ones are dropped


@dataclass(frozen=True)
class RouteKey:
    """A route template (``"PUT /channels/{channel_id}/permissions/{target}"``) and the
    value of its major parameter."""

    route: str
    major: str


@dataclass
class _Bucket:
    limit: int = 1  # unknown: one call at a time until an answer says more
    remaining: int = 1
    reset_at: float | None = None
    in_flight: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def roll(self, now: float) -> None:
        if self.reset_at is not None and now >= self.reset_at:
            self.remaining, self.reset_at = self.limit, None

    def spare(self, now: float) -> int:
        self.roll(now)
        return self.remaining - self.in_flight


@dataclass(frozen=True)
class RateHeaders:
    """The rate-limit headers of one answer."""

    bucket: str | None
    limit: int
    remaining: int
    reset_after: float

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateHeaders | None:
        try:
            return cls(
                bucket=headers.get("X-RateLimit-Bucket"),
                limit=int(headers["X-RateLimit-Limit"]),
                remaining=int(headers["X-RateLimit-Remaining"]),
                reset_after=float(headers["X-RateLimit-Reset-After"]),
            )
        except (KeyError, ValueError):
            return None


class RouteBuckets:
    def __init__(
        self,
        now: Callable[[], float],
        max_wait: float,
    ) -> None:
        self._now = now
        self.max_wait = max_wait  # a longer reset is not waited out: the engine retries
        self._hashes: dict[str, str] = {}  # route template → bucket hash
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._limits: dict[str, int] = {}  # bucket hash → its limit

    def bucket(self, key: RouteKey) -> _Bucket:
        name = self._hashes.get(key.route, key.route)
        bucket = self._buckets.get((name, key.major))
        if bucket is None:
            self._forget_idle()
            # A bucket named on another channel (or guild) has the same limit here.
            limit = self._limits.get(name, 1)
            bucket = self._buckets[(name, key.major)] = _Bucket(limit, limit)
        return bucket

    def _forget_idle(self) -> None:
        """Past ``KEEP`` buckets, drop the ones whose window is over and that nobody uses:
        one per channel ever called would otherwise accumulate for the daemon's life."""
        if len(self._buckets) < KEEP:
            return
        now = self._now()
        idle = [k for k, b in self._buckets.items()
                if not b.in_flight and (b.reset_at is None or b.reset_at <= now)]
        for k in idle:
            del self._buckets[k]

    def spare(self, key: RouteKey) -> int:
        """Requests the route may send now (negative: over-committed)."""
        return self.bucket(key).spare(self._now())

    @asynccontextmanager
    async def acquire(self, key: RouteKey) -> AsyncIterator[list[RateHeaders | None]]:
        """Hold one request of the route's bucket for the body, which appends the
        answer's headers (or None) to the yielded list."""
        bucket = await self._wait(key)
        bucket.in_flight += 1
        answers: list[RateHeaders | None] = []
        try:
            yield answers
        finally:
            bucket.in_flight -= 1
            self.learn(key, next((a for a in reversed(answers) if a is not None), None))
            bucket.changed.set()

    async def _wait(self, key: RouteKey) -> _Bucket:
        while True:
            bucket = self.bucket(key)
            now = self._now()
            if bucket.spare(now) > 0:
                return bucket
            wait = None if bucket.reset_at is None else max(bucket.reset_at - now, 0.0)
            if wait is not None and wait > self.max_wait:
                raise RateLimitedError(
                    f"Discord route {key.route} ({key.major}) is exhausted for {wait:.2f}s",
                    service="discord", retry_after=wait,
                )
            bucket.changed.clear()
            async with slot_released():
                # An answer (which may describe the bucket) or the reset, whichever first.
                with suppress(TimeoutError):
                    await asyncio.wait_for(bucket.changed.wait(), timeout=wait)

    def learn(self, key: RouteKey, headers: RateHeaders | None) -> None:
        """Fold an answer's headers into the route's bucket."""
        if headers is None:
            return
        if headers.bucket is not None and self._hashes.get(key.route) != headers.bucket:
            # First answer naming the bucket: the route's state moves under that name,
            # unless another route sharing the bucket got there first.
            old = self.bucket(key)
            self._hashes[key.route] = headers.bucket
            self._buckets.pop((key.route, key.major), None)
            self._buckets.setdefault((headers.bucket, key.major), old)
            old.changed.set()
        bucket = self.bucket(key)
        if headers.bucket is not None:
            self._limits[headers.bucket] = headers.limit
        now = self._now()
        reset_at = now + headers.reset_after
        bucket.roll(now)
        bucket.limit = headers.limit
        if bucket.reset_at is None:
            bucket.remaining, bucket.reset_at = headers.remaining, reset_at
        else:  # the same window: answers may arrive out of order
            bucket.remaining = min(bucket.remaining, headers.remaining)
            bucket.reset_at = max(bucket.reset_at, reset_at)
        bucket.changed.set()
