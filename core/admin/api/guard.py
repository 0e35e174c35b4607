"""One call that puts the admin API's self-protection in front of it: the body cap, the
rate-limit and availability middleware, and (tests only, ``ADMIN_MIDDLEWARE``) a
middleware loaded by name, such as the sandbox's fault injection."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from core.admin.api.bodycap import BodyCap
from core.admin.api.ratelimit import (
    AdminRateLimit,
    Availability,
    BucketLimits,
    RateLimitOptions,
)
from core.admin.service import AdminService
from core.config import Settings
from core.errors import ConfigError


def options_from(settings: Settings) -> RateLimitOptions:
    return RateLimitOptions(
        reads=BucketLimits(
            settings.admin_read_rate_per_second, settings.admin_read_burst,
            refill_to=max(1.0, settings.admin_read_burst / 2),
        ),
        actions=BucketLimits(settings.admin_action_rate_per_second, settings.admin_action_burst),
        failed_auth=BucketLimits(settings.admin_failed_auth_rate_per_second,
                                 settings.admin_failed_auth_burst),
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
) -> None:
    """Middlewares run outermost last added: [named middleware →] body cap → limits."""
    sessions = app.state.sessions
    app.add_middleware(
        AdminRateLimit, options=options_from(settings), availability=availability,
        session_held=lambda session_id: sessions.get(session_id) is not None,
        admin_token=app.state.admin_token,
    )
    app.add_middleware(BodyCap, max_bytes=settings.admin_max_body_bytes)
    if settings.admin_middleware:
        app.add_middleware(load_middleware(settings.admin_middleware))


def load_middleware(reference: str) -> Any:
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError("ADMIN_MIDDLEWARE", f"must be 'module:Class', got {reference!r}")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("ADMIN_MIDDLEWARE", f"cannot load {reference!r}: {exc}") from None
