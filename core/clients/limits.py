"""The outbound limits in nominal seconds, and their scaled forms for each adapter.

The request limits default to the documented ones (Discord 50 requests/s globally;
Calendar 600 per minute per user and 10,000 per project), a small safety margin under
them. Discord's becomes a sliding window of 49 requests per second (``SlidingWindow``:
bursts allowed, never more than 49 in any second as Discord counts them); Calendar's
become token buckets through ``window_rate``, whose burst plus refill over one period is
the limit less the margin. A fixed low default (40 of Discord's 50) alone cost a quarter
of the throughput a bulk change could have. Per-route buckets come from the answers
themselves: ``RouteBuckets`` reads ``X-RateLimit-Bucket`` / ``-Limit`` / ``-Remaining`` /
``-Reset-After`` and waits before a request that would exceed a route's bucket. The invalid-request
budget stays at half of Discord's 10,000 per 10 minutes: exceeding it is a ban.
``Settings`` fields of the same names override the defaults. Every duration and every rate
period is multiplied by the time scale, as the sandbox scales its own windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from core.clients.breaker import BreakerConfig
from core.clients.calendar_adapter import CalendarOptions
from core.clients.discord_adapter import DiscordOptions
from core.clients.ratelimit import LimiterConfig, Rate, Window
from core.clients.resilience import ResilienceConfig
from core.clock import TimeScale

# Deadlines are safety nets, not behaviour: scaled, but never so short that a loopback
# call in a fast test (time_scale 0.001) would miss them.
MIN_DEADLINE = 1.0


def deadline(seconds: float, scale: TimeScale) -> float:
    return max(MIN_DEADLINE, scale.seconds(seconds))


# Kept free in every window: loopback and network jitter can bunch requests that left evenly.
RATE_SAFETY_MARGIN = 0.02


def window_rate(limit: float, period: float, burst_fraction: float,
                margin: float = RATE_SAFETY_MARGIN) -> Rate:
    """A bucket that never sends more than ``limit * (1 - margin)`` in any ``period``-long
    window: it holds ``burst_fraction`` of that allowance (at least one call) and refills
    the rest over the period."""
    allowance = limit * (1.0 - margin)
    burst = max(1.0, allowance * burst_fraction)
    return Rate(max(allowance - burst, allowance * 0.5), period, burst)


@dataclass(frozen=True)
class ClientLimits:
    discord_requests_per_second: float = 50.0
    discord_invalid_request_budget: int = 5000
    discord_invalid_request_window_seconds: float = 600.0
    calendar_requests_per_minute_user: float = 600.0
    calendar_requests_per_minute_project: float = 10_000.0
    background_lane_share: float = 0.5
    breaker_failure_threshold: int = 5
    breaker_reset_seconds: float = 30.0
    breaker_probe_retry_seconds: float = 1.0
    client_call_timeout_seconds: float = 15.0
    client_max_rate_limit_wait_seconds: float = 5.0
    # discord.py raises RateLimited *before sending* whenever a bucket resets further off
    # than this, however many requests remain, so it must exceed every bucket window we
    # use; the library's own floor is 30 s for that reason.
    discord_max_rate_limit_wait_seconds: float = 30.0
    calendar_http_timeout_seconds: float = 10.0
    calendar_in_call_retries: int = 2
    calendar_retry_pause_seconds: float = 0.5
    discord_in_call_retries: int = 2
    discord_retry_pause_seconds: float = 0.5

    @classmethod
    def from_settings(cls, settings: Any) -> ClientLimits:
        """Every field a ``Settings`` object also has, taken from it."""
        return cls(**{
            f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)
        })

    # ---- scaled forms ------------------------------------------------------------------------
    def resilience(
        self, rates: tuple[Rate, ...], scale: TimeScale, windows: tuple[Window, ...] = ()
    ) -> ResilienceConfig:
        return ResilienceConfig(
            breaker=BreakerConfig(
                failure_threshold=self.breaker_failure_threshold,
                reset_timeout=scale.seconds(self.breaker_reset_seconds),
                probe_retry_after=scale.seconds(self.breaker_probe_retry_seconds),
            ),
            limiter=LimiterConfig(
                service_rates=tuple(
                    Rate(r.limit, scale.seconds(r.period), r.burst) for r in rates
                ),
                background_share=self.background_lane_share,
                max_wait=scale.seconds(self.client_max_rate_limit_wait_seconds),
                service_windows=tuple(
                    Window(w.limit, scale.seconds(w.period)) for w in windows
                ),
            ),
            call_timeout=deadline(self.client_call_timeout_seconds, scale),
        )

    def discord(self, base_url: str, scale: TimeScale) -> DiscordOptions:
        return DiscordOptions(
            base_url=base_url,
            resilience=self.resilience((), scale, (self.discord_window(),)),
            max_rate_limit_wait=scale.seconds(max(30.0, self.discord_max_rate_limit_wait_seconds)),
            invalid_request_budget=self.discord_invalid_request_budget,
            invalid_request_window=scale.seconds(self.discord_invalid_request_window_seconds),
            in_call_retries=self.discord_in_call_retries,
            retry_pause=scale.seconds(self.discord_retry_pause_seconds),
        )

    def discord_window(self) -> Window:
        """Discord counts its global limit over a sliding second: the same window, one
        request short of it (49 of 50), lets a whole change's calls go at once and a bulk
        run send at the limit, where a token bucket with a burst of one spaced every
        call out."""
        allowance = self.discord_requests_per_second * (1 - RATE_SAFETY_MARGIN)
        if allowance >= 1.0:
            return Window(math.floor(allowance), 1.0)
        return Window(1, 1.0 / allowance)  # under one a second: one per longer window

    def calendar(self, endpoint: str, scale: TimeScale) -> CalendarOptions:
        # Bursts of a tenth of a minute's allowance: refill plus burst stays under the quota
        # in any sliding minute.
        rates = (
            window_rate(self.calendar_requests_per_minute_user, 60.0, burst_fraction=0.1),
            window_rate(self.calendar_requests_per_minute_project, 60.0, burst_fraction=0.1),
        )
        return CalendarOptions(
            endpoint=endpoint,
            resilience=self.resilience(rates, scale),
            http_timeout=deadline(self.calendar_http_timeout_seconds, scale),
            in_call_retries=self.calendar_in_call_retries,
            retry_pause=scale.seconds(self.calendar_retry_pause_seconds),
        )
