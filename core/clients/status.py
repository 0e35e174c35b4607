"""A snapshot of one service's outbound health, for logs, status commands and the dashboard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from core.clients.ports import CalendarPort, DiscordPort
    from core.clients.probes import Probe

# One cheap call asking a service whether groupsync's credentials work again (the
# adapter's own: a success also lifts the adapter's refusal to call).
CredentialProbe = Callable[[], Awaitable["Probe"]]


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    breaker_state: str  # "closed" | "open" | "half_open"
    seconds_until_half_open: float  # 0 unless open: the countdown for the banner
    consecutive_failures: int
    rate_limits: int = 0  # rate-limit answers since the last success (never opens it)
    rate_limited_for: dict[str, float] = field(default_factory=dict)  # lane → seconds left
    invalid_requests: int | None = None  # Discord only: 401/403/429 in the current window
    invalid_request_budget: int | None = None
    # lane → whole calls the client-side buckets allow right now, and seconds until full
    rate_limit_remaining: dict[str, int] = field(default_factory=dict)
    rate_limit_reset_in: dict[str, float] = field(default_factory=dict)
    # Discord only: the gateway link (GatewayStatus.to_json), None without one
    gateway: dict[str, Any] | None = None

    @property
    def available(self) -> bool:
        return self.breaker_state != "open"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds_until_half_open"] = round(self.seconds_until_half_open, 3)
        data["rate_limited_for"] = {k: round(v, 3) for k, v in self.rate_limited_for.items()}
        data["rate_limit_reset_in"] = {
            k: round(v, 3) for k, v in self.rate_limit_reset_in.items()
        }
        return data


class GatewayHandle(Protocol):
    """The Discord gateway link as the board holds it (core/clients/discord_gateway.py's
    GatewayLink, not imported: it imports this module's neighbours)."""

    def start(self, sink: Callable[[Any], None]) -> None: ...

    async def close(self) -> None: ...


class ClientBoard:
    """Where a runtime's clients show themselves to operators (core/admin): their live
    status, and a way to close a breaker on request. Filled by the syncer factory; empty
    when a factory builds no clients (fakes, or no service enabled)."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], ServiceStatus]] = []
        self._resets: dict[str, Callable[[], None]] = {}
        self._probes: dict[str, CredentialProbe] = {}
        self._discord: DiscordPort | None = None
        self._calendar: CalendarPort | None = None
        self._gateway: GatewayHandle | None = None

    def publish(
        self,
        sources: Iterable[Callable[[], ServiceStatus]],
        breaker_resets: dict[str, Callable[[], None]] | None = None,
        *,
        discord: DiscordPort | None = None,
        probes: dict[str, CredentialProbe] | None = None,
        calendar: CalendarPort | None = None,
        gateway: GatewayHandle | None = None,
    ) -> None:
        self._sources.extend(sources)
        self._resets.update(breaker_resets or {})
        self._probes.update(probes or {})
        if discord is not None:
            self._discord = discord
        if calendar is not None:
            self._calendar = calendar
        if gateway is not None:
            self._gateway = gateway

    @property
    def discord(self) -> DiscordPort | None:
        """The Discord client reminder delivery posts through (None: Discord disabled, or
        a factory that opens no clients)."""
        return self._discord

    @property
    def calendar(self) -> CalendarPort | None:
        """The Calendar client the incremental sync lists changes through (None: Calendar
        disabled, or a factory that opens no clients)."""
        return self._calendar

    @property
    def gateway(self) -> GatewayHandle | None:
        """The Discord gateway link (None: DISCORD_GATEWAY=0, Discord disabled, or a
        factory that opens no clients); the active daemon starts it."""
        return self._gateway

    def statuses(self) -> list[ServiceStatus]:
        return [source() for source in self._sources]

    def probe(self, service: str) -> CredentialProbe | None:
        """The credentials probe of ``service`` (None: no client of it in this process)."""
        return self._probes.get(service)

    def reset_breaker(self, service: str) -> bool:
        reset = self._resets.get(service)
        if reset is None:
            return False
        reset()
        return True
