"""Build the outbound clients from settings, on the caller's exit stack.

``open_clients`` makes no network call: Discord logs in on its first call and the
Calendar client reads its key file and bundled discovery document only. A service not in
ENABLED_SERVICES gets ``None``.

The clients' own timing (token buckets, breaker, invalid-request window) runs on the
monotonic clock, scaled by the time scale like the sandbox's windows; a test's frozen
wall clock would otherwise stop a token bucket from ever refilling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace

from core.clients.cached_discord import CachedDiscord
from core.clients.calendar_adapter import CalendarAdapter
from core.clients.discord_adapter import DiscordAdapter
from core.clients.discord_gateway import (
    IDENTIFY_GAP_SECONDS,
    RESTART_SECONDS,
    GatewayLink,
    GatewayOptions,
)
from core.clients.gateway_cache import ChannelCache
from core.clients.google_credentials import (
    credentials_reloader,
    load_google_credentials,
    require_credentials_file,
    require_delegation,
)
from core.clients.limits import ClientLimits
from core.clients.ports import CalendarPort, DiscordPort
from core.clients.status import CredentialProbe, ServiceStatus
from core.clock import Clock, TimeScale
from core.config import Service, Settings
from core.errors import ConfigError


@dataclass(frozen=True)
class Clients:
    """The ports the syncers use (None for a disabled service) and their health readers."""

    discord: DiscordPort | None
    calendar: CalendarPort | None
    status_sources: tuple[Callable[[], ServiceStatus], ...] = ()
    breaker_resets: dict[str, Callable[[], None]] = field(default_factory=dict)
    probes: dict[str, CredentialProbe] = field(default_factory=dict)  # per service
    # The Discord gateway connection behind ``discord``'s cache (DISCORD_GATEWAY), not yet
    # connected: only the active daemon starts it (core/engine/loops/discord_changes.py).
    gateway: GatewayLink | None = None

    def statuses(self) -> list[ServiceStatus]:
        """Breaker state, rate-limit pauses (and Discord's invalid-request count) per service."""
        return [source() for source in self.status_sources]


async def open_clients(
    settings: Settings,
    stack: AsyncExitStack,
    clock: Clock | None = None,
    time_scale: TimeScale | float | None = None,
    *,
    limits: ClientLimits | None = None,
    now: Callable[[], float] = time.monotonic,
) -> Clients:
    """Adapters for the enabled services, each closed when ``stack`` unwinds.

    Raises ``ConfigError`` naming DISCORD_BOT_TOKEN / GOOGLE_CREDENTIALS_FILE when an enabled
    service lacks its credential, and ``NeedsAttentionError`` when the key file is unreadable.
    ``clock`` is accepted for symmetry with the engine; see the module docstring.
    """
    del clock
    scale = _scale(time_scale, settings)
    limits = limits or ClientLimits.from_settings(settings)
    require_credentials(settings)
    discord_adapter = None
    calendar_adapter = None
    discord: DiscordPort | None = None
    gateway = None
    if settings.service_enabled(Service.DISCORD):
        assert settings.discord_bot_token is not None
        token = settings.discord_bot_token.get_secret_value()
        discord_adapter = DiscordAdapter(
            token, limits.discord(settings.discord_api_base_url, scale), now)
        await discord_adapter.start()
        stack.push_async_callback(discord_adapter.close)
        discord = discord_adapter
        if settings.discord_gateway:
            gateway = open_gateway(settings, scale, token, discord_adapter, now)
            stack.push_async_callback(gateway.close)
            discord = CachedDiscord(discord_adapter, gateway.cache)
    if settings.service_enabled(Service.CALENDAR):
        assert settings.google_credentials_file is not None
        credentials = await asyncio.to_thread(
            load_google_credentials, settings.google_credentials_file,
            settings.google_impersonate_subject)
        calendar_adapter = CalendarAdapter(
            credentials, limits.calendar(settings.google_calendar_endpoint, scale), now,
            reload=credentials_reloader(settings.google_credentials_file,
                                        settings.google_impersonate_subject))
        await calendar_adapter.start()
        stack.push_async_callback(calendar_adapter.close)
    adapters = [a for a in (discord_adapter, calendar_adapter) if a is not None]
    sources = [a.status for a in adapters]
    if gateway is not None and discord_adapter is not None:
        sources[0] = with_gateway(discord_adapter.status, gateway)
    return Clients(
        discord=discord,
        calendar=calendar_adapter,
        status_sources=tuple(sources),
        breaker_resets={a.service: a.guard.reset_breaker for a in adapters},
        probes={a.service: a.probe for a in adapters},
        gateway=gateway,
    )


def with_gateway(source: Callable[[], ServiceStatus], link: GatewayLink
                 ) -> Callable[[], ServiceStatus]:
    """Discord's status with its gateway link's beside the REST client's."""
    return lambda: replace(source(), gateway=link.status().to_json())


def open_gateway(settings: Settings, scale: TimeScale, token: str, rest: DiscordAdapter,
                 now: Callable[[], float]) -> GatewayLink:
    """The gateway link and its cache; nothing connects until the link is started."""
    # An echo comes within milliseconds; the floor keeps a loaded test machine's
    # scaled timeout from distrusting every channel.
    echo_timeout = max(1.0, scale.seconds(settings.discord_gateway_echo_timeout_seconds))
    options = GatewayOptions(
        base_url=settings.discord_api_base_url,
        identify_gap=scale.seconds(IDENTIFY_GAP_SECONDS),
        restart_delays=tuple(max(0.05, scale.seconds(d)) for d in RESTART_SECONDS),
    )
    return GatewayLink(token, options, ChannelCache(echo_timeout, now),
                       rejected=lambda: rest.credentials_rejected, refused=rest.note_rejected)


def _scale(time_scale: TimeScale | float | None, settings: Settings) -> TimeScale:
    if isinstance(time_scale, TimeScale):
        return time_scale
    return TimeScale(settings.time_scale if time_scale is None else float(time_scale))


def require_credentials(settings: Settings) -> None:
    """Every enabled service has its credential, a credentials file is readable and
    complete, and a service-account file has the Workspace user it acts for
    (GOOGLE_IMPERSONATE_SUBJECT). Reads the disk only: ``core.clients.probes`` asks the
    services themselves."""
    missing = settings.missing_credentials()
    if not missing:
        if settings.service_enabled(Service.CALENDAR) and settings.google_credentials_file:
            require_credentials_file(settings.google_credentials_file,
                                     settings.google_impersonate_subject)
            require_delegation(settings.google_credentials_file,
                               settings.google_impersonate_subject)
        return
    services = {"DISCORD_BOT_TOKEN": "discord", "GOOGLE_CREDENTIALS_FILE": "calendar"}
    enabled = " and ".join(services[name] for name in missing)
    raise ConfigError(
        " and ".join(missing),
        f"not set, but {enabled} {'is' if len(missing) == 1 else 'are'} in ENABLED_SERVICES; "
        "set the credentials, or remove the service from ENABLED_SERVICES "
        "(`python main.py demo` runs everything against the sandbox instead)",
    )
