"""Limits of the fake services: frozen option objects, documented values by default.

Every duration here is *nominal* (the documented value in seconds). The fakes
multiply each one by the sandbox's ``time_scale`` before enforcing or
reporting it, so ``time_scale=0.01`` turns Discord's 10-minute invalid-request
window into 6 seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class RouteLimit:
    """One Discord rate-limit bucket: ``limit`` requests per ``period`` seconds."""

    bucket: str
    limit: int
    period: float


def _default_routes() -> Mapping[str, RouteLimit]:
    # Discord does not document per-route limits; these mirror observed ones.
    overwrite = RouteLimit("channel-permissions", 10, 10.0)
    member_role = RouteLimit("member-roles", 10, 10.0)
    routes = {
        "GET /users/@me": RouteLimit("users-me", 5, 5.0),
        "GET /oauth2/applications/@me": RouteLimit("application", 5, 5.0),
        "GET /users/{user_id}": RouteLimit("users", 30, 30.0),
        "GET /channels/{channel_id}": RouteLimit("channel", 5, 5.0),
        "PUT /channels/{channel_id}/permissions/{target}": overwrite,
        "DELETE /channels/{channel_id}/permissions/{target}": overwrite,
        "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}": member_role,
        "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}": member_role,
        "POST /users/@me/channels": RouteLimit("create-dm", 5, 5.0),
        "POST /channels/{channel_id}/messages": RouteLimit("create-message", 5, 5.0),
        "GET /channels/{channel_id}/messages": RouteLimit("channel-messages", 5, 5.0),
        "GET /guilds/{guild_id}": RouteLimit("guild", 5, 5.0),
        "GET /guilds/{guild_id}/roles": RouteLimit("guild-roles", 5, 5.0),
        "GET /guilds/{guild_id}/members/{user_id}": RouteLimit("guild-member", 5, 5.0),
    }
    return MappingProxyType(routes)


@dataclass(frozen=True)
class GatewayLimits:
    """The Discord gateway's numbers (docs: topics/gateway, session start limit object)."""

    heartbeat_interval: float = 41.25  # what HELLO asks for, nominal seconds
    # A connection that sends nothing for this many intervals is a zombie and is cut
    # (never sooner than ``zombie_floor`` real seconds: heartbeats run in a thread that a
    # loaded test machine may hold up).
    zombie_after_intervals: float = 3.0
    zombie_floor: float = 5.0
    session_starts: int = 1000  # identifies per reset window
    session_start_window: float = 86_400.0
    max_concurrency: int = 1
    replay_buffer: int = 10_000  # dispatches kept per session for RESUME


@dataclass(frozen=True)
class DiscordLimits:
    """Discord REST limits (docs: topics/rate-limits)."""

    global_limit: int = 50
    global_period: float = 1.0
    invalid_limit: int = 10_000
    invalid_window: float = 600.0
    routes: Mapping[str, RouteLimit] = field(default_factory=_default_routes)
    default_route: RouteLimit = RouteLimit("default", 5, 5.0)
    # How long a message nonce is remembered ("the past few minutes"), nominal seconds.
    nonce_window: float = 300.0
    gateway: GatewayLimits = GatewayLimits()


@dataclass(frozen=True)
class CalendarLimits:
    """Google Calendar API quotas (guides/quota) and batch size (guides/batch)."""

    project_per_window: int = 10_000
    user_per_window: int = 600
    window: float = 60.0
    patch_units: int = 3
    # 403 (usageLimits rateLimitExceeded / userRateLimitExceeded) or 429.
    over_quota_status: int = 403
    # How quota refusals are worded: "errors" (errors[].reason), "details" (status and
    # google.rpc details[] only) or "both" (calendar_errors.rate_limited).
    quota_envelope: str = "errors"
    max_batch: int = 1000
    max_results_default: int = 250
    max_results_cap: int = 2500


@dataclass(frozen=True)
class SandboxLimits:
    discord: DiscordLimits = DiscordLimits()
    calendar: CalendarLimits = CalendarLimits()
    # Seed for the fraction-based fault dice, so a run is reproducible.
    seed: int = 0
