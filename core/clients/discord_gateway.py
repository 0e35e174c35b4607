"""The daemon's Discord gateway connection: discord.py's own gateway client (``GUILDS``
intent only) keeping ``ChannelCache`` current (DESIGN §4).

discord.py does the protocol: HELLO, heartbeats at the interval HELLO asks for, IDENTIFY,
RESUME after a dropped connection (to READY's ``resume_gateway_url``), a new IDENTIFY only
when the gateway answers INVALID_SESSION. What this module adds (discord/gateway.py,
client.py, 2.7.1):

- discord.py's ``Client`` connects to the class-wide ``DiscordWebSocket.DEFAULT_GATEWAY``
  (wss://gateway.discord.gg) and never asks ``GET /gateway/bot``. ``GatewayHTTPClient``
  (the same rebased HTTP client as the REST adapter's, see ``BasedHTTPClient``) asks it
  whenever a *new* session is about to start, through the configured base URL, and
  connects to the URL it names: the sandbox in tests, Discord in production;
- the same answer's ``session_start_limit`` is respected: with no identify left, the
  IDENTIFY waits for ``reset_after``; and a re-identify waits the 5 s of Discord's
  identify bucket (scaled), which discord.py's default hook sleeps unscaled;
- the cache is fed from the raw payloads (``_GatewayState`` wraps discord.py's parsers),
  so it holds exactly what ``GET /channels/{id}`` would return; discord.py's own model
  cache is kept as the library keeps it, and a payload it cannot model is logged, not
  fatal to the connection;
- a connection discord.py gives up on (a close code it does not retry, a failed login,
  an unreachable ``/gateway/bot``) is started again with a fresh client after a scaled
  backoff; while it is down the cache is untrusted and syncs read over REST.

Only the active daemon starts a link (``core.engine.loops.discord_changes``): a standby
keeps no connection. Its three REST calls per connection (the login's two and
``/gateway/bot``) go through discord.py directly, not the adapter's buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.state import ConnectionState

from core import metrics
from core.clients.discord_adapter import BasedHTTPClient, use_base_url
from core.clients.gateway_cache import ChannelCache, ChannelChange, LinkState
from core.observability import get_logger

log = get_logger("core.clients.discord_gateway")

IDENTIFY_GAP_SECONDS = 5.0  # Discord: one IDENTIFY per 5 s per max_concurrency bucket
RESTART_SECONDS = (1.0, 2.0, 5.0, 15.0, 30.0)  # nominal, between fresh clients
ChangeSink = Callable[[ChannelChange], None]
# discord.py's LoginFailure keeps none of Discord's answer; this is what REST gets for it.
REFUSED_WORDS = "401: Unauthorized"


@dataclass(frozen=True)
class GatewayOptions:
    """Already multiplied by the time scale (``echo_timeout`` lives in the cache)."""

    base_url: str
    identify_gap: float = IDENTIFY_GAP_SECONDS
    restart_delays: tuple[float, ...] = RESTART_SECONDS


@dataclass(frozen=True)
class GatewayStatus:
    state: str  # LinkState's value
    since: float  # wall time the link entered it
    latency: float | None  # heartbeat → ACK, seconds
    cache_age: float | None  # seconds since the gateway last sent anything
    channels: int
    identifies: int
    resumes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(),
            "latency": None if self.latency is None else round(self.latency, 4),
            "cache_age": None if self.cache_age is None else round(self.cache_age, 3),
            "channels": self.channels, "identifies": self.identifies, "resumes": self.resumes,
        }


class AuthenticationFailed(Exception):
    """The gateway closed with 4004: it refused the token (discord.py does not retry)."""


class NoGateway(Exception):
    """``GET /gateway/bot`` answered 404: this Discord (a stand-in) serves no gateway."""


class GatewayHTTPClient(BasedHTTPClient):
    """Asks ``GET /gateway/bot`` before a new session and connects where it says."""

    session_start_limit: dict[str, int] | None = None

    async def ws_connect(self, url: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
        default = str(DiscordWebSocket.DEFAULT_GATEWAY)
        if url.startswith(default):  # a new session (a resume connects to READY's URL)
            try:
                _shards, found, limits = await self.get_bot_gateway()
            except discord.GatewayNotFound as exc:
                cause = exc.__cause__
                if isinstance(cause, discord.HTTPException) and cause.status == 404:
                    raise NoGateway(str(cause)) from exc
                if isinstance(cause, discord.HTTPException) and cause.status == 401:
                    raise discord.LoginFailure(str(cause)) from exc  # the token, not the URL
                raise
            self.session_start_limit = {k: int(v) for k, v in limits.items()}  # type: ignore[call-overload]
            url = str(yarl.URL(found).with_query(yarl.URL(url).query))
        return await super().ws_connect(url, compress=compress)


class _GatewayState(ConnectionState["_GatewayClient"]):
    """discord.py's connection state, handing each channel payload to the link first."""

    link: GatewayLink

    def _library(self, parse: Callable[[Any], None], data: Any) -> None:
        try:
            parse(data)
        except Exception as exc:  # its model cache only; ours is fed already
            log.debug("gateway_payload_not_modelled", error=f"{type(exc).__name__}: {exc}")

    def parse_ready(self, data: Any) -> None:
        with self.link.noting_ready():
            self.link.cache.session_started(str(g["id"]) for g in data.get("guilds", ()))
        self._library(super().parse_ready, data)

    def parse_resumed(self, data: Any) -> None:
        self.link.resumed()
        self._library(super().parse_resumed, data)

    def parse_guild_create(self, data: Any) -> None:
        if not data.get("unavailable"):
            with self.link.noting_ready():
                changes = self.link.cache.guild_available(str(data["id"]),
                                                          data.get("channels") or ())
            for change in changes:
                self.link.emit(change)
        self._library(super().parse_guild_create, data)

    def parse_channel_create(self, data: Any) -> None:
        self.link.cache.channel_updated(data)  # a new channel holds nothing of ours yet
        self._library(super().parse_channel_create, data)

    def parse_channel_update(self, data: Any) -> None:
        change = self.link.cache.channel_updated(data)
        if change is not None:
            self.link.emit(change)
        self._library(super().parse_channel_update, data)

    def parse_channel_delete(self, data: Any) -> None:
        change = self.link.cache.channel_deleted(data)
        if change is not None:
            self.link.emit(change)
        self._library(super().parse_channel_delete, data)


class _GatewayClient(discord.Client):
    def __init__(self, link: GatewayLink, **options: Any) -> None:
        self._link = link  # before the base class builds the state that reads it
        super().__init__(**options)

    def _get_state(self, **options: Any) -> ConnectionState[_GatewayClient]:
        state = _GatewayState(dispatch=self.dispatch, handlers=self._handlers,
                              hooks=self._hooks, http=self.http, **options)
        state.link = self._link
        return state

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        if event == "disconnect":
            self._link.connection_lost()
        super().dispatch(event, *args, **kwargs)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self._link.before_identify(initial)


class GatewayLink:
    """One gateway connection, kept up until ``close``. ``start(sink)`` connects; every
    change to a known channel's overwrites is handed to ``sink`` (in the event loop)."""

    def __init__(
        self,
        token: str,
        options: GatewayOptions,
        cache: ChannelCache,
        *,
        rejected: Callable[[], str | None] = lambda: None,
        refused: Callable[[str], None] = lambda _words: None,
        trace: aiohttp.TraceConfig | None = None,
    ) -> None:
        self._token = token
        self.options = options
        self.cache = cache
        self._rejected = rejected  # the REST adapter's: no login while the token is refused
        # A refused login tells the REST adapter, which parks Discord and probes: retrying
        # the login on the restart backoff would be one more 401 toward Cloudflare's ban
        # each time (a CI run saw four before the first run had marked the service).
        self._refused = refused
        self._trace = trace
        self._sink: ChangeSink | None = None
        self._client: _GatewayClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.identifies = 0
        self.resumes = 0

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self, sink: ChangeSink) -> None:
        if self._task is not None:
            return
        self._sink = sink
        metrics.watch_gateway(self.status)
        self._task = asyncio.get_running_loop().create_task(self._keep_connected())

    async def close(self) -> None:
        self._closing = True
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.cache.closed()
        metrics.watch_gateway(None)

    async def drop(self) -> None:
        """Close the websocket as a network failure would (tests, chaos): discord.py
        resumes."""
        client = self._client
        if client is not None and client.ws is not None:
            await client.ws.socket.close(code=4000)

    # ---- what the client and its state call ----------------------------------------------
    def emit(self, change: ChannelChange) -> None:
        if self._sink is not None:
            self._sink(change)

    def resumed(self) -> None:
        self.resumes += 1
        metrics.GATEWAY_RESUMES.inc()
        log.info("discord_gateway_resumed", resumes=self.resumes)
        with self.noting_ready():
            self.cache.resumed()

    @contextlib.contextmanager
    def noting_ready(self) -> Iterator[None]:
        """One line when the cache becomes current (syncs read from it from now on)."""
        was_up = self.cache.up
        yield
        if self.cache.up and not was_up:
            log.info("discord_gateway_ready", channels=self.cache.channels,
                     identifies=self.identifies, resumes=self.resumes)

    def connection_lost(self) -> None:
        if not self._closing:
            self.cache.connection_lost()
            log.info("discord_gateway_disconnected", state=self.cache.state.value)

    async def before_identify(self, initial: bool) -> None:
        """Respect ``session_start_limit`` and the identify bucket before an IDENTIFY."""
        client = self._client
        limits = client.http.session_start_limit if client is not None and isinstance(
            client.http, GatewayHTTPClient) else None
        if limits is not None and int(limits.get("remaining", 1)) <= 0:
            wait = int(limits.get("reset_after", 0)) / 1000.0
            log.warning("discord_gateway_identify_waiting", seconds=round(wait, 3),
                        why="no session start left (session_start_limit)")
            await asyncio.sleep(wait)
        elif not initial:
            await asyncio.sleep(self.options.identify_gap)
        self.identifies += 1
        metrics.GATEWAY_IDENTIFIES.inc()
        log.info("discord_gateway_identify", identifies=self.identifies, initial=initial)

    # ---- status --------------------------------------------------------------------------
    def status(self) -> GatewayStatus:
        latency = None
        client = self._client
        if client is not None and client.ws is not None and self.cache.up:
            value = client.latency
            latency = value if value != float("inf") else None
        return GatewayStatus(self.cache.state.value, self.cache.state_since, latency,
                             self.cache.age(), self.cache.channels, self.identifies,
                             self.resumes)

    # ---- the connection ------------------------------------------------------------------
    async def _keep_connected(self) -> None:
        failures = 0
        while not self._closing:
            if self._rejected() is None:
                try:
                    await self._connect_once()
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except (discord.LoginFailure, AuthenticationFailed) as exc:
                    log.warning("discord_gateway_login_refused", error=str(exc)[:300],
                                effect="no login until the credentials probe succeeds")
                    self._refused(REFUSED_WORDS)
                except NoGateway as exc:
                    log.warning("discord_gateway_unavailable", error=str(exc)[:300],
                                effect="syncs read channels over REST")
                    self.cache.closed()
                    return
                except Exception as exc:
                    log.warning("discord_gateway_failed",
                                error=f"{type(exc).__name__}: {exc}"[:300],
                                state=self.cache.state.value)
                    failures += 1
            if self._closing:
                break
            self.cache.closed()
            delays = self.options.restart_delays
            await asyncio.sleep(delays[min(failures, len(delays) - 1)])

    async def _connect_once(self) -> None:
        """Until discord.py gives up: a client it closed (a close code it does not
        retry) is replaced; one it merely left (an unreachable ``/gateway/bot`` before
        any session) connects again, logged in already."""
        client = self._client
        if client is None or client.is_closed():
            intents = discord.Intents.none()
            intents.guilds = True  # channels and their overwrites: CHANNEL_* events
            client = _GatewayClient(self, intents=intents, http_trace=self._trace,
                                    chunk_guilds_at_startup=False, max_messages=None)
            use_base_url(client, self.options.base_url, GatewayHTTPClient)
            self._client = client
            try:
                await client.login(self._token)
            except BaseException:
                self._client = None
                await client.close()
                raise
        try:
            await client.connect(reconnect=True)
        except discord.ConnectionClosed as exc:
            if exc.code == 4004:
                raise AuthenticationFailed(str(exc)) from exc
            raise


def is_up(link: GatewayLink | None) -> bool:
    return link is not None and link.cache.state is LinkState.CONNECTED
