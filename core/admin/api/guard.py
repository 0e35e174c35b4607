"""One call that puts the admin API's self-protection in front of it: the rate-limit
and availability middleware, and (only when ``ADMIN_FAULT_INJECTION`` is set, for tests)
the fault-injection routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from core.admin.api.faults import AdminFaults, fault_router
from core.admin.api.ratelimit import (
    AdminRateLimit,
    Availability,
    BucketLimits,
    RateLimitOptions,
)
from core.admin.service import AdminService
from core.config import Settings


def options_from(settings: Settings) -> RateLimitOptions:
    return RateLimitOptions(
        reads=BucketLimits(
            settings.admin_read_rate_per_second, settings.admin_read_burst,
            refill_to=max(1.0, settings.admin_read_burst / 2),
        ),
        actions=BucketLimits(settings.admin_action_rate_per_second, settings.admin_action_burst),
    )


def availability_of(role: str, database_ok: bool) -> Availability:
    """A daemon's role as the admin API reports it, as the availability the limiter uses:
    not yet known → starting; anything but active → standby (reads only)."""
    if not database_ok:
        return Availability.DATABASE_AWAY
    if role in ("none", "", "starting"):
        return Availability.STARTING
    return Availability.READY if role == "active" else Availability.STANDBY


def availability_for(service: AdminService) -> Availability:
    presence = service.live.presence
    return availability_of(service.role(), presence.database_ok if presence else True)


def install_guard(
    app: FastAPI,
    settings: Settings,
    availability: Callable[[], Availability],
    operator: Callable[..., Any],
) -> None:
    faults = AdminFaults() if settings.admin_fault_injection else None
    if faults is not None:
        app.include_router(fault_router(faults, operator))
    app.add_middleware(
        AdminRateLimit, options=options_from(settings), availability=availability, faults=faults
    )
