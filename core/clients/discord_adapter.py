"""DiscordPort over discord.py's REST client (no gateway).

``discord.Client(intents=Intents.none())`` logs in lazily on the first call
(``GET /users/@me`` + ``GET /oauth2/applications/@me``) and never opens a websocket.
Calls go through ``client.http`` with plain ids, one HTTP request per port method: no
fetches of members or roles just to satisfy the high-level models.

discord.py's own behaviour that we rely on (discord/http.py, 2.7.1):

- it waits out a 429 whose ``retry_after`` is at most ``max_ratelimit_timeout`` and
  raises ``RateLimited`` above it (a long server wait becomes ``RateLimitedError`` → a
  scheduled retry, not a held task). It also raises before sending whenever a bucket
  resets further off than that, remaining requests or not, which is why the constructor
  clamps it to >= 30 s. We keep 30 s nominal but multiply it by the time scale, as the
  sandbox does its bucket windows, so we set the ``HTTPClient`` attribute directly;
- it retries 500/502/504/524 after 1, 3, 5, 7, 9 s; our in-call deadline cuts that short;
- it keeps per-route buckets of its own and, when an answer says a bucket has no request
  left, sleeps until the reset *inside* that call, holding the run for the whole window.
  ``RouteBuckets`` (core/clients/route_buckets.py) keeps those buckets instead, from the
  same headers, and waits *before* a call with the run's slot given back, so
  ``BasedHTTPClient`` hands discord.py a bucket that never waits;
- it ignores the ``X-RateLimit-Scope`` header, so an aiohttp trace hook reads every
  response instead: it feeds the invalid-request guard (the library's own retries
  included) and tells a global 429 from a route one;
- every request URL is ``Route.BASE`` (a class attribute) + path. Assigning it would send
  every discord.py client of the process to one host, so each adapter's ``HTTPClient``
  rewrites its own routes onto its own base URL instead (``BasedHTTPClient``);
- without ``allowed_mentions`` Discord parses every mention in ``content`` (``@everyone``
  in a group's name would ping the server), so each message sends one that parses
  nothing but the users it names on purpose.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
import discord
from discord.http import HTTPClient, Ratelimit, Route, handle_message_parameters
from discord.utils import MISSING

from core import metrics, tracing
from core.clients.invalid_requests import InvalidRequestGuard
from core.clients.ports import Overwrite, PostedMessage
from core.clients.probes import DISCORD_SETTING, Probe, Verdict, probe_discord_token
from core.clients.resilience import ResilienceConfig, ServiceGuard
from core.clients.route_buckets import RateHeaders, RouteBuckets, RouteKey
from core.clients.status import ServiceStatus
from core.errors import (
    CredentialsRejectedError,
    NeedsAttentionError,
    RateLimitedError,
    SyncError,
    TransientError,
)
from core.lanes import Lane
from core.observability import get_logger

log = get_logger("core.clients.discord")

SERVICE = "discord"
MAX_NONCE = 25
# 404 codes that mean "already gone" for a revoke: unknown overwrite, member, role, user.
GONE_CODES = frozenset({10007, 10009, 10011, 10013})
LIBRARY_RETRIED = frozenset({500, 502, 504, 524})
# A login sends GET /users/@me and GET /oauth2/applications/@me: two requests of the
# global limit.
LOGIN_REQUESTS = 2
MEMBER_ROLE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"

T = TypeVar("T")


@dataclass(frozen=True)
class DiscordOptions:
    """Already multiplied by the time scale."""

    base_url: str
    resilience: ResilienceConfig
    max_rate_limit_wait: float = 30.0  # a longer server wait raises instead of sleeping
    invalid_request_budget: int = 5000
    invalid_request_window: float = 600.0
    in_call_retries: int = 2  # for Cloudflare's HTML 503, which discord.py does not retry
    retry_pause: float = 0.5  # first pause; doubled for the next


@dataclass
class _Observed:
    """What the trace hook saw during one adapter call."""

    global_429: bool = False
    statuses: list[int] = field(default_factory=list)
    rate: RateHeaders | None = None  # the last answer's rate-limit headers


_observed: ContextVar[_Observed | None] = ContextVar("groupsync_discord_observed", default=None)


def discord_nonce(nonce: str) -> str:
    """Discord accepts nonces of at most 25 characters: longer ones are hashed (stably)."""
    if len(nonce) <= MAX_NONCE:
        return nonce
    return hashlib.sha256(nonce.encode()).hexdigest()[:MAX_NONCE]


def translate(exc: BaseException, *, global_429: bool = False) -> SyncError | None:
    """A discord.py / aiohttp exception as a ``core.errors`` type; None if it is not one."""
    if isinstance(exc, discord.RateLimited):
        return RateLimitedError(
            f"Discord rate limit: retry after {exc.retry_after:.2f}s"
            + (" (global)" if global_429 else ""),
            service=SERVICE, retry_after=exc.retry_after, is_global=global_429,
        )
    if isinstance(exc, discord.LoginFailure):
        # discord.py turns the login's 401 into LoginFailure; Discord's words are the cause's.
        cause = exc.__cause__
        words = (cause.text if isinstance(cause, discord.HTTPException) and cause.text
                 else "401: Unauthorized")
        return rejected(words)
    if isinstance(exc, discord.HTTPException):
        return _translate_http(exc)
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
        return TransientError(f"Discord unreachable: {type(exc).__name__}: {exc}", service=SERVICE)
    return None


def _translate_http(exc: discord.HTTPException) -> SyncError:
    status, code = exc.status, exc.code
    message = exc.text or getattr(exc.response, "reason", "") or f"HTTP {status}"
    if is_html(exc.text):
        # Cloudflare's error page in front of Discord: say so instead of quoting the page.
        reason = getattr(exc.response, "reason", None) or "error"
        message = f"{reason} (an HTML page from Cloudflare, not Discord's JSON)"
    if status == 429:
        # No Via header or an HTML body: Cloudflare, not Discord (an invalid-request ban).
        return RateLimitedError(
            "Discord answered 429 without rate-limit details (Cloudflare ban after too "
            "many invalid requests?)",
            service=SERVICE, is_global=True,
        )
    if status >= 500:
        return TransientError(f"Discord {status}: {message}", service=SERVICE)
    if status == 401:
        # Every call with the bot token gets this answer: the token is wrong or revoked
        # (a 403 is one channel's missing permission, not the token).
        return rejected(message, code=code)
    return NeedsAttentionError(message, service=SERVICE, status=status, code=code)


def rejected(words: str, code: int | str | None = 0) -> CredentialsRejectedError:
    return CredentialsRejectedError(words, service=SERVICE, variable=DISCORD_SETTING,
                                    status=401, code=code, label="Discord")


def is_html(text: str | None) -> bool:
    return bool(text) and str(text).lstrip()[:1] == "<"


def _retry_in_call(exc: BaseException) -> bool:
    """Cloudflare's HTML 5xx page that discord.py did not retry itself (it retries
    500/502/504/524 with 1-9 s sleeps, not 503): the edge's hiccup, worth a quick second
    try. Discord's own JSON 503 is left to the scheduled retry and the breaker."""
    return (
        isinstance(exc, discord.DiscordServerError)
        and exc.status not in LIBRARY_RETRIED
        and is_html(exc.text)
    )


class BasedHTTPClient(HTTPClient):
    """discord.py's HTTP client, sending to its own base URL instead of ``Route.BASE``.

    ``HTTPClient``'s methods build ``Route`` objects whose URL starts with the class-wide
    ``Route.BASE``; ``request`` swaps that prefix for this client's ``base_url``. Installed
    on a constructed client by ``use_base_url`` (the ``Client`` builds its own HTTPClient,
    which its connection state also holds, so the object stays and only its class changes).
    """

    base_url: str
    _unmetered: Ratelimit | None = None

    async def request(self, route: Route, **kwargs: Any) -> Any:
        return await super().request(rebased(route, self.base_url), **kwargs)

    def get_ratelimit(self, key: str) -> Ratelimit:
        # RouteBuckets decides before each call; one bucket that never waits stands in
        # for all of discord.py's (its 429 handling, which does not use it, stays).
        if self._unmetered is None:
            self._unmetered = _Unmetered(None)
        return self._unmetered


class _Unmetered(Ratelimit):
    """A discord.py bucket that lets every request through at once."""

    async def acquire(self) -> None:
        return None

    async def __aexit__(self, *_exc: object) -> None:
        return None


def use_base_url(client: discord.Client, base_url: str,
                 cls: type[BasedHTTPClient] = BasedHTTPClient) -> None:
    http = client.http
    http.__class__ = cls
    assert isinstance(http, BasedHTTPClient)
    http.base_url = base_url.rstrip("/")


def rebased(route: Route, base_url: str) -> Route:
    """A copy of ``route`` whose URL starts with ``base_url`` instead of ``Route.BASE``."""
    prefix = Route.BASE
    if not route.url.startswith(prefix):
        raise RuntimeError(f"discord.py route {route.key} does not start with {prefix}")
    moved = copy.copy(route)
    moved.url = base_url + route.url[len(prefix):]
    return moved


def allowed_mentions(user_ids: Sequence[str] = ()) -> discord.AllowedMentions:
    """Ping nobody but ``user_ids``: no @everyone/@here, no roles, no other users."""
    users: list[discord.abc.Snowflake] | bool = (
        [discord.Object(int(u)) for u in user_ids] if user_ids else False
    )
    return discord.AllowedMentions(everyone=False, users=users, roles=False,
                                   replied_user=False)


class DiscordAdapter:
    """DiscordPort. Construct, ``await start()``, call, ``await close()``."""

    service = SERVICE

    def __init__(self, token: str, options: DiscordOptions, now: Callable[[], float]) -> None:
        self._token = token
        self.options = options
        self._now = now
        self.guard = ServiceGuard(SERVICE, options.resilience, now)
        self.routes = RouteBuckets(now, options.max_rate_limit_wait)
        self.invalid = InvalidRequestGuard(
            options.invalid_request_budget, options.invalid_request_window
        )
        self._client: discord.Client | None = None
        self._logged_in = False
        self._login_turn = asyncio.Lock()
        self._login_attempts = 0
        self._login_error: SyncError | None = None
        # Discord's words once it rejected the token: no call goes out until ``probe``
        # finds the token accepted (a 401 per call counts toward Cloudflare's ban).
        self._rejected: str | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_response)
        # Voice is never used; these class flags are discord.py's own switch for its
        # "PyNaCl / davey is not installed" start-up warnings.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True  # no gateway, so no events either; only silences a warning
        client = discord.Client(intents=intents, http_trace=trace, max_ratelimit_timeout=30.0)
        # The constructor clamps to >= 30 s (unscaled); the request loop reads the attribute.
        client.http.max_ratelimit_timeout = self.options.max_rate_limit_wait
        use_base_url(client, self.options.base_url)
        self._client = client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _ensure_login(self) -> discord.Client:
        client = self._client
        if client is None:
            raise RuntimeError("DiscordAdapter.start() was not awaited")
        if self._logged_in:
            return client
        # Only reached inside ``_login``, whose lock makes this the one login in flight.
        try:
            await client.login(self._token)
        except BaseException:
            # Each login opens a new aiohttp session on the HTTPClient's connector, and
            # closing the session closes that connector: drop both, so a later login
            # starts clean and nothing is left unclosed.
            await client.http.close()
            client.http.connector = MISSING
            raise
        self._logged_in = True
        log.info("client.discord_login", service=SERVICE)
        return client

    # ---- DiscordPort -------------------------------------------------------------------------
    async def channel_overwrites(self, channel_id: str, lane: Lane) -> dict[str, Overwrite]:
        async def op(client: discord.Client) -> dict[str, Overwrite]:
            data: Any = await client.http.get_channel(channel_id)
            return {
                str(o["id"]): Overwrite(str(o["id"]), int(o["type"]), int(o["allow"]),
                                        int(o["deny"]))
                for o in data.get("permission_overwrites", [])
            }

        return await self._call(lane, op, f"read channel {channel_id}",
                                RouteKey("GET /channels/{channel_id}", channel_id))

    async def set_member_overwrite(
        self, channel_id: str, user_id: str, allow: int, deny: int, lane: Lane, reason: str
    ) -> None:
        async def op(client: discord.Client) -> None:
            await client.http.edit_channel_permissions(
                channel_id, user_id, str(allow), str(deny), 1, reason=reason  # MEMBER_OVERWRITE
            )

        await self._call(lane, op, f"set overwrite {channel_id}/{user_id}",
                         RouteKey("PUT /channels/{channel_id}/permissions/{target}", channel_id))

    async def delete_member_overwrite(
        self, channel_id: str, user_id: str, lane: Lane, reason: str
    ) -> None:
        async def op(client: discord.Client) -> None:
            await client.http.delete_channel_permissions(channel_id, user_id, reason=reason)

        await self._call(
            lane, op, f"delete overwrite {channel_id}/{user_id}",
            RouteKey("DELETE /channels/{channel_id}/permissions/{target}", channel_id),
            gone_ok=True,
        )

    async def member_role_ids(self, guild_id: str, user_id: str, lane: Lane) -> frozenset[str]:
        async def op(client: discord.Client) -> frozenset[str] | None:
            data: Any = await client.http.get_member(guild_id, user_id)
            return frozenset(str(r) for r in data.get("roles", []))

        roles = await self._call(
            lane, op, f"read member {user_id}",
            RouteKey("GET /guilds/{guild_id}/members/{user_id}", guild_id), gone_ok=True,
        )
        return roles or frozenset()  # None: not (or no longer) in the guild

    async def add_member_role(
        self, guild_id: str, user_id: str, role_id: str, lane: Lane, reason: str
    ) -> None:
        async def op(client: discord.Client) -> None:
            await client.http.add_role(guild_id, user_id, role_id, reason=reason)

        await self._call(lane, op, f"add role {role_id} to {user_id}",
                         RouteKey(f"PUT {MEMBER_ROLE}", guild_id))

    async def remove_member_role(
        self, guild_id: str, user_id: str, role_id: str, lane: Lane, reason: str
    ) -> None:
        async def op(client: discord.Client) -> None:
            await client.http.remove_role(guild_id, user_id, role_id, reason=reason)

        await self._call(lane, op, f"remove role {role_id} from {user_id}",
                         RouteKey(f"DELETE {MEMBER_ROLE}", guild_id), gone_ok=True)

    async def send_message(
        self,
        channel_id: str,
        content: str,
        nonce: str,
        lane: Lane,
        mention_user_ids: Sequence[str] = (),
    ) -> str:
        mentions = allowed_mentions(mention_user_ids)

        async def op(client: discord.Client) -> str:
            with handle_message_parameters(
                content=content, nonce=discord_nonce(nonce), allowed_mentions=mentions
            ) as params:
                data: Any = await client.http.send_message(channel_id, params=params)
            return str(data["id"])

        return await self._call(lane, op, f"post to channel {channel_id}",
                                RouteKey("POST /channels/{channel_id}/messages", channel_id))

    async def own_messages_since(
        self, channel_id: str, since: datetime, lane: Lane, limit: int = 100
    ) -> list[PostedMessage]:
        async def op(client: discord.Client) -> list[PostedMessage]:
            after = discord.utils.time_snowflake(since, high=False) - 1  # inclusive
            data: Any = await client.http.logs_from(channel_id, limit, after=after)
            bot_id = str(client.user.id) if client.user is not None else None
            return [
                PostedMessage(str(m["id"]), str(m.get("content") or ""))
                for m in sorted(data, key=lambda m: int(m["id"]))
                if str(m.get("author", {}).get("id")) == bot_id
            ]

        return await self._call(lane, op, f"read recent messages of channel {channel_id}",
                                RouteKey("GET /channels/{channel_id}/messages", channel_id))

    # ---- credentials -------------------------------------------------------------------------
    async def probe(self) -> Probe:
        """One ``GET /users/@me``: does Discord accept the token? OK lifts the refusal."""
        found = await probe_discord_token(self.options.base_url, self._token,
                                          self.options.resilience.call_timeout)
        if found.verdict is Verdict.OK:
            self._rejected = None
            self._login_error = None
        elif found.verdict is Verdict.REJECTED:
            self.invalid.record(self._now(), 401, None)  # it counts toward the ban too
            self._rejected = found.words or self._rejected
        return found

    @property
    def credentials_rejected(self) -> str | None:
        return self._rejected

    def note_rejected(self, words: str) -> None:
        """Another client of this token (the gateway's login) was refused: no REST call
        until the probe finds the token accepted again."""
        self.invalid.record(self._now(), 401, None)
        self._rejected = words

    # ---- status ------------------------------------------------------------------------------
    def status(self) -> ServiceStatus:
        now = self._now()
        return replace(
            self.guard.status(),
            invalid_requests=self.invalid.count(now),
            invalid_request_budget=self.invalid.budget,
        )

    # ---- plumbing ----------------------------------------------------------------------------
    async def _call(
        self,
        lane: Lane,
        op: Callable[[discord.Client], Awaitable[T]],
        what: str,
        route: RouteKey,
        gone_ok: bool = False,
    ) -> T:
        if self._rejected is not None:
            raise rejected(self._rejected)  # no call: the probe finds out when it works again
        self._check_invalid_budget(what)
        try:
            if not self._logged_in:
                await self._login(lane)
            async with self.routes.acquire(route) as answers:
                observed = _Observed()
                try:
                    return await self.guard.call(
                        lane, self._attempt(op, observed, gone_ok, what), what
                    )
                finally:
                    answers.append(observed.rate)
        except CredentialsRejectedError as exc:
            self._rejected = exc.words
            raise

    def _attempt(
        self,
        op: Callable[[discord.Client], Awaitable[T]],
        observed: _Observed,
        gone_ok: bool,
        what: str,
    ) -> Callable[[], Awaitable[T]]:
        async def attempt() -> T:
            token = _observed.set(observed)
            try:
                return await self._with_retries(op, what)
            except discord.NotFound as exc:
                if gone_ok and exc.code in GONE_CODES:
                    return None  # type: ignore[return-value]  # already gone: done
                raise _translated(exc, observed) from exc
            except (TimeoutError, discord.DiscordException, aiohttp.ClientError, OSError) as exc:
                error = translate(exc, global_429=observed.global_429)
                if error is None:
                    raise
                raise error from exc
            finally:
                _observed.reset(token)

        return attempt

    async def _login(self, lane: Lane) -> None:
        """Log in as a call of its own, costing its two requests of the global limit.
        Callers queue on a lock holding no token, so only one of them pays."""
        queued_at = self._login_attempts
        async with self._login_turn:
            if self._logged_in:
                return
            if self._login_attempts != queued_at and self._login_error is not None:
                # The login this call queued behind has just failed: share its answer
                # rather than ask again at once (a 429 would be answered by another).
                raise self._login_error

            async def nothing(_client: discord.Client) -> None:
                return None

            try:
                await self.guard.call(
                    lane, self._attempt(nothing, _Observed(), False, "log in"), "log in",
                    cost=LOGIN_REQUESTS,
                )
            except SyncError as exc:
                self._login_error = exc
                raise
            finally:
                self._login_attempts += 1

    async def _with_retries(self, op: Callable[[discord.Client], Awaitable[T]], what: str) -> T:
        pause = self.options.retry_pause
        for attempt in range(self.options.in_call_retries + 1):
            try:
                return await op(await self._ensure_login())
            except discord.DiscordServerError as exc:
                if attempt >= self.options.in_call_retries or not _retry_in_call(exc):
                    raise
                log.info("client.in_call_retry", service=SERVICE, what=what,
                         attempt=attempt + 1, delay=pause, status=exc.status)
                await asyncio.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    def _check_invalid_budget(self, what: str) -> None:
        now = self._now()
        retry_after = self.invalid.retry_after(now)
        if retry_after is None:
            return
        log.warning("client.invalid_request_guard", service=SERVICE,
                    invalid=self.invalid.count(now), budget=self.invalid.budget,
                    retry_after=round(retry_after, 3))
        raise RateLimitedError(
            f"not calling Discord ({what}): {self.invalid.count(now)} invalid (401/403/429) "
            f"responses in the last {self.invalid.window:g}s reached our budget of "
            f"{self.invalid.budget}; Cloudflare bans at 10,000. Fix the token or "
            f"permissions; calls resume in {retry_after:.1f}s",
            service=SERVICE, retry_after=retry_after, is_global=True,
        )

    async def _on_response(
        self, _session: aiohttp.ClientSession, _ctx: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        response = params.response
        scope = response.headers.get("X-RateLimit-Scope")
        self.invalid.record(self._now(), response.status, scope)
        metrics.external_call(SERVICE, response.status)
        trace = tracing.current()
        if trace is not None:  # an operator's traced run (Sync now): each call, its answer
            trace.call(params.method, _route_path(str(params.url), self.options.base_url),
                       response.status)
        observed = _observed.get()
        if observed is not None:
            observed.statuses.append(response.status)
            observed.rate = RateHeaders.parse(response.headers) or observed.rate
            if response.status == 429 and (
                scope == "global" or response.headers.get("X-RateLimit-Global") == "true"
            ):
                observed.global_429 = True


def _route_path(url: str, base_url: str) -> str:
    """The request's path as Discord's documentation writes it (no host, no base)."""
    base = base_url.rstrip("/")
    return url[len(base):] if url.startswith(base) else url


def _translated(exc: discord.HTTPException, observed: _Observed) -> SyncError:
    return translate(exc, global_429=observed.global_429) or _translate_http(exc)
