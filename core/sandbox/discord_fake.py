"""The fake Discord REST server: auth, rate limits, faults and logging around discord_api."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import secrets
import urllib.parse
from typing import Any

from aiohttp import web

from core.sandbox import discord_api
from core.sandbox.clock import Clock
from core.sandbox.discord_errors import DiscordError, unauthorized_body
from core.sandbox.discord_gateway import GATEWAY_PATH, Gateway
from core.sandbox.discord_state import DiscordState
from core.sandbox.faults import first
from core.sandbox.options import DiscordLimits, RouteLimit
from core.sandbox.ratelimit import FixedWindowBucket, SlidingWindow
from core.sandbox.reqlog import RequestRecord
from core.sandbox.service_base import FakeService

API_PREFIX = "/api/v10"
CLOUDFLARE_5XX_HTML = (
    "<!DOCTYPE html><html><head><title>discord.com | {status}: {reason}</title></head><body>"
    "<h1>Error {status}</h1><p>{reason}</p><p>Cloudflare Ray ID: 8f1c2d3e4a5b6c7d</p>"
    "<p>Performance &amp; security by Cloudflare</p></body></html>"
)
CLOUDFLARE_BAN_HTML = (
    "<!DOCTYPE html><html><head><title>Access denied | discord.com used Cloudflare to "
    "restrict access</title></head><body>Error 1015: You are being rate limited.</body></html>"
)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    """Content-Type exactly ``application/json`` (discord.py parses nothing else)."""
    out = dict(headers or {})
    if status == 204 or body is None:
        return web.Response(status=status, headers=out)
    out["Content-Type"] = "application/json"
    return web.Response(status=status, body=json.dumps(body).encode(), headers=out)


def make_bot_token(bot_id: str) -> str:
    head = base64.urlsafe_b64encode(bot_id.encode()).decode().rstrip("=")
    return f"{head}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(27)}"


class DiscordFake(FakeService):
    """State, limits and the aiohttp handler of the fake Discord."""

    name = "discord"

    def __init__(self, clock: Clock, limits: DiscordLimits | None = None, seed: int = 0) -> None:
        super().__init__(clock, seed)
        self.limits = limits or DiscordLimits()
        self.state = DiscordState()
        self.bot_token = make_bot_token(self.state.bot.id)
        self.gateway = Gateway(clock, self.state, self.limits.gateway,
                               token=lambda: self.bot_token, reset_token=self._reset_token)
        self._global: dict[str, SlidingWindow] = {}
        self._buckets: dict[tuple[str, str, str], FixedWindowBucket] = {}
        self._invalid: dict[str, SlidingWindow] = {}

    # ---- seeding and readers (delegated to the state) ------------------------------------
    def add_guild(self, guild_id: int | str, *, name: str = "sandbox guild",
                  bot_role_position: int = 10, bot_permissions: int | None = None) -> None:
        """A guild whose bot role sits at ``bot_role_position``."""
        extra = {} if bot_permissions is None else {"bot_permissions": bot_permissions}
        self.state.add_guild(guild_id, name=name, bot_role_position=bot_role_position, **extra)

    def add_role(self, guild_id: int | str, role_id: int | str, position: int, *,
                 name: str | None = None, permissions: int = 0,
                 mentionable: bool = False) -> None:
        self.state.add_role(guild_id, role_id, position, name=name, permissions=permissions,
                            mentionable=mentionable)

    def set_bot_permissions(self, guild_id: int | str, permissions: int) -> None:
        """What the bot's role grants (before channel and category overwrites)."""
        self.state.set_bot_permissions(guild_id, permissions)

    def add_channel(self, channel_id: int | str, guild_id: int | str, name: str, type: int = 0,
                    *, bot_can_view: bool = True, parent_id: int | str | None = None) -> None:
        """type 0 text, 2 voice, 4 category; ``bot_can_view=False`` makes the bot get
        403/50001; ``parent_id`` puts it in a category whose overwrites then apply."""
        self.state.add_channel(channel_id, guild_id, name, type, bot_can_view=bot_can_view,
                               parent_id=parent_id)

    def pings(self, channel_id: int | str | None = None) -> list[dict[str, Any]]:
        """Who each posted message pinged (after allowed_mentions and permissions):
        ``{"message_id", "channel_id", "everyone", "users", "roles"}``."""
        wanted = None if channel_id is None else str(channel_id)
        return [dict(p) for p in self.state.pings if wanted in (None, p["channel_id"])]

    def delete_channel(self, channel_id: int | str) -> None:
        self.state.delete_channel(channel_id)

    def add_user(self, user_id: int | str, username: str, accepts_dms: bool = True) -> None:
        self.state.add_user(user_id, username, accepts_dms)

    def add_member(self, guild_id: int | str, user_id: int | str) -> None:
        self.state.add_member(guild_id, user_id)

    def remove_member(self, guild_id: int | str, user_id: int | str) -> None:
        self.state.remove_member(guild_id, user_id)

    def set_foreign_overwrite(self, channel_id: int | str, target_id: int | str, type: int,
                              allow: int = 0, deny: int = 0) -> None:
        """An overwrite a person made in the Discord UI (type 0 role, 1 member)."""
        self.state.set_foreign_overwrite(channel_id, target_id, type, allow, deny)

    def overwrites(self, channel_id: int | str) -> dict[str, dict[str, Any]]:
        return self.state.overwrites(channel_id)

    def member_roles(self, guild_id: int | str, user_id: int | str) -> list[str]:
        return self.state.member_roles(guild_id, user_id)

    def dm_messages(self, user_id: int | str) -> list[dict[str, Any]]:
        return self.state.dm_messages(user_id)

    @property
    def bot_user_id(self) -> str:
        return self.state.bot.id

    def messages(self, channel_id: int | str) -> list[dict[str, Any]]:
        return self.state.channel_messages(channel_id)

    def invalid_requests(self, ip: str = "127.0.0.1") -> int:
        """Invalid (401/403/429) responses counted for ``ip`` in the current window."""
        window = self._invalid.get(ip)
        return 0 if window is None else window.used(self.clock.now())

    def _reset_token(self) -> None:
        """Discord resets a bot's token when it exceeds the session start limit."""
        self.bot_token = make_bot_token(self.state.bot.id)

    # ---- gateway controls (discord_gateway) ---------------------------------------------
    def drop_gateway_connections(self) -> int:
        """Cut every gateway socket like a network failure (the client RESUMEs)."""
        return self.gateway.drop_connections()

    def invalidate_gateway_sessions(self, notify: bool = True) -> int:
        """Forget every gateway session: connected ones are told (op 9, d: false) unless
        ``notify`` is false; the next RESUME of any gets INVALID_SESSION (d: false)."""
        return self.gateway.invalidate_sessions(notify=notify)

    def request_gateway_reconnect(self) -> int:
        """Send op 7 RECONNECT to every identified gateway socket."""
        return self.gateway.request_reconnect()

    def gateway_stats(self) -> dict[str, Any]:
        """Counters: connections, identifies, resumes, invalid_sessions, dispatched, ..."""
        return self.gateway.stats()

    def set_session_start_limit(self, total: int | None = None,
                                remaining: int | None = None) -> dict[str, int]:
        """Change ``session_start_limit`` (e.g. ``remaining=0`` to see a refused IDENTIFY)."""
        self.gateway.start_limit.set(self.clock.now(), total=total, remaining=remaining)
        return self.gateway.start_limit.view(self.clock.now())

    def allow_privileged_intents(self, intents: int) -> None:
        """The privileged intent bits enabled for the bot (the developer portal's switches)."""
        self.gateway.allowed_privileged = int(intents)

    # ---- HTTP ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(GATEWAY_PATH, self.gateway.handle)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.handle)
        app.on_shutdown.append(self.gateway.close_all)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        path = request.path[len(API_PREFIX):]
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        matched = discord_api.ROUTES.match(request.method, path)
        route_key = matched[0].key if matched else f"{request.method} {path}"
        record = RequestRecord(
            service=self.name, method=request.method, path=path, route=route_key, status=0,
            time=now, body=body, query=dict(request.query),
            audit_reason=_audit_reason(request),
        )
        response = await self._respond(request, matched, body, record)
        record.status = response.status
        self.log.add(record)
        return response

    async def _respond(
        self,
        request: web.Request,
        matched: tuple[Any, dict[str, str]] | None,
        body: Any,
        record: RequestRecord,
    ) -> web.Response:
        ip = request.remote or "unknown"
        now = record.time
        if self._banned(ip, now):
            record.faults.append("cloudflare_ban")
            return web.Response(status=429, text=CLOUDFLARE_BAN_HTML, content_type="text/html")
        fired = self.faults.take(record.route)
        record.faults.extend(f.kind for f in fired)
        latency = first(fired, "latency")
        if latency is not None:
            await asyncio.sleep(self.clock.scaled(latency.latency or 1.0))
        edge = first(fired, "html_5xx")
        if edge is not None:  # Cloudflare answers before Discord sees the request
            status = edge.status or 502
            reason = _REASONS.get(status, "Server Error")
            return web.Response(status=status, content_type="text/html",
                                text=CLOUDFLARE_5XX_HTML.format(status=status, reason=reason))
        token = request.headers.get("Authorization", "")
        if token != f"Bot {self.bot_token}" or first(fired, "revoked_token"):
            return self._invalid_response(ip, json_response(401, unauthorized_body()))
        if matched is None:
            return self._unmatched(request.method, record.path)
        route, params = matched
        now = self.clock.now()
        refused = self._global_limit(token, now)
        if refused is not None:
            return self._invalid_response(ip, refused)
        bucket_headers, refused = self._route_limit(token, route.key, params, now)
        if refused is not None:
            return self._invalid_response(ip, refused)
        gateway_url = f"ws://{request.host}{GATEWAY_PATH}"
        response = self._invalid_response(ip, self._answer(route.name, params, body, fired,
                                                           bucket_headers, record.query,
                                                           gateway_url))
        late = first(fired, "late_answer")
        if late is not None:
            await asyncio.sleep(self.clock.scaled(late.latency or 1.0))
        return response

    def _answer(self, name: str, params: dict[str, str], body: Any, fired: list[Any],
                headers: dict[str, str], query: dict[str, str],
                gateway_url: str) -> web.Response:
        injected_429 = first(fired, "429")
        if injected_429 is not None:
            # A sub-limit: 429 while the bucket still reports Remaining > 0.
            return self._rate_limited(self.clock.scaled(injected_429.retry_after or 1.0),
                                      headers, scope="user")
        error = first(fired, "5xx")
        if error is not None:
            status = error.status or 500
            return json_response(status, {"message": f"{status}: Server Error", "code": 0}, headers)
        # The nonce window is nominal like every other duration: at time_scale 0.01
        # Discord's few minutes pass in seconds, so tests can outlive it.
        ctx = discord_api.Context(self.state, params, body, self.clock.now(),
                                  self.clock.scaled(self.limits.nonce_window), query,
                                  gateway_bot=lambda: self.gateway.bot_info(gateway_url))
        try:
            status, payload = discord_api.HANDLERS[name](ctx)
        except DiscordError as exc:
            return json_response(exc.status, exc.body(), headers)
        return json_response(status, payload, headers)

    def _unmatched(self, method: str, path: str) -> web.Response:
        if discord_api.ROUTES.path_exists(path):
            return json_response(405, {"message": "405: Method Not Allowed", "code": 0})
        return json_response(404, {"message": "404: Not Found", "code": 0})

    # ---- limits --------------------------------------------------------------------------
    def _banned(self, ip: str, now: float) -> bool:
        window = self._invalid.get(ip)
        return window is not None and window.used(now) >= self.limits.invalid_limit

    def _invalid_response(self, ip: str, response: web.Response) -> web.Response:
        scope = response.headers.get("X-RateLimit-Scope")
        if response.status in (401, 403, 429) and scope != "shared":
            window = self._invalid.setdefault(ip, SlidingWindow(
                self.limits.invalid_limit, self.clock.scaled(self.limits.invalid_window)))
            window.add(self.clock.now())
        return response

    def _global_limit(self, token: str, now: float) -> web.Response | None:
        window = self._global.setdefault(token, SlidingWindow(
            self.limits.global_limit, self.clock.scaled(self.limits.global_period)))
        if not window.would_exceed(now):
            window.add(now)
            return None
        retry_after = max(window.retry_after(now), 0.001)
        return json_response(
            429,
            {"message": "You are being rate limited.", "retry_after": round(retry_after, 3),
             "global": True},
            {"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Global": "true",
             "X-RateLimit-Scope": "global", "Via": "1.1 google"},
        )

    def _route_limit(self, token: str, route_key: str, params: dict[str, str],
                     now: float) -> tuple[dict[str, str], web.Response | None]:
        spec: RouteLimit = self.limits.routes.get(route_key, self.limits.default_route)
        major = params.get("channel_id") or params.get("guild_id") or ""
        bucket = self._buckets.setdefault((token, spec.bucket, major), FixedWindowBucket(
            spec.limit, self.clock.scaled(spec.period)))
        allowed = bucket.try_acquire(now)
        state = bucket.state(now)
        headers = {
            "X-RateLimit-Limit": str(state.limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": f"{self.clock.wall() + state.reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{state.reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(spec.bucket.encode()).hexdigest()[:32],
        }
        if allowed:
            return headers, None
        return headers, self._rate_limited(max(state.reset_after, 0.001), headers, scope="user")

    @staticmethod
    def _rate_limited(retry_after: float, headers: dict[str, str], scope: str) -> web.Response:
        return json_response(
            429,
            {"message": "You are being rate limited.", "retry_after": round(retry_after, 3),
             "global": False},
            {**headers, "Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": scope,
             "Via": "1.1 google"},
        )


_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout", 520: "Web server is returning an unknown error"}


def _audit_reason(request: web.Request) -> str | None:
    reason = request.headers.get("X-Audit-Log-Reason")
    return None if reason is None else urllib.parse.unquote(reason)
