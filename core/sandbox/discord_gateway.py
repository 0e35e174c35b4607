"""The fake Discord gateway: the websocket discord.py's own client connects to.

Served on the Discord listener at ``/gateway``; ``GET /api/v10/gateway/bot`` gives
its URL. The subset of the protocol served (docs: topics/gateway, gateway-events,
opcodes-and-status-codes), as discord.py 2.7's ``DiscordWebSocket`` speaks it:

- query ``v=10`` (else close 4012) and ``encoding=json`` (etf is not served: 4002);
  ``compress=zlib-stream`` makes every frame one zlib stream's ``Z_SYNC_FLUSH`` chunk in
  a binary message, as Discord sends them; without it frames are JSON text.
- HELLO (op 10) with ``heartbeat_interval`` (41.25 s nominal, scaled by the sandbox
  clock); HEARTBEAT (op 1, also before IDENTIFY) is answered by HEARTBEAT_ACK (op 11). A
  connection that sends nothing for 3 intervals (never under 5 real seconds) is cut
  like a zombie, without a close frame; its session stays resumable.
- IDENTIFY (op 2): a wrong token closes 4004; intents outside Discord's bits 4013;
  privileged intents (GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT) not enabled with
  ``allow_privileged_intents`` 4014; a bad ``shard`` 4010; a second IDENTIFY 4005; any
  other op before IDENTIFY/RESUME 4003, an unknown op 4001, undecodable JSON 4002.
  Each IDENTIFY takes one of ``session_start_limit.remaining``; with none left Discord
  terminates every session and resets the bot token: every socket closes 4004 and the
  old token gets 401 on REST too (``DiscordFake.bot_token`` holds the new one).
- READY (``v``, ``user``, ``guilds`` as ``{id, unavailable: true}``, ``session_id``,
  ``resume_gateway_url``, ``shard`` when sent, ``application``), then one GUILD_CREATE
  per guild with its roles, channels with ``permission_overwrites``, the bot's own
  member, ``member_count``, ``joined_at`` and empty threads/voice states/presences.
- Dispatches (op 0) numbered per session by ``s``: CHANNEL_CREATE / CHANNEL_UPDATE /
  CHANNEL_DELETE with the full channel object for every change made through REST
  (overwrite PUT/DELETE) or the control methods (``add_channel``, ``delete_channel``,
  ``set_foreign_overwrite``), GUILD_ROLE_CREATE / GUILD_ROLE_UPDATE, GUILD_CREATE for a
  guild added later; only to sessions with the GUILDS intent.
- RESUME (op 6): replays every dispatch after ``seq`` and then RESUMED; an unknown or
  invalidated session, or a ``seq`` the buffer no longer holds, gets INVALID_SESSION
  (op 9, ``d: false``). A client closing with 1000/1001 ends its session (as Discord
  does); any other end (4000, a drop) leaves it resumable.
- Controls: ``drop_connections`` (TCP abort, no close frame: the client resumes),
  ``invalidate_sessions`` (connected sessions get op 9 ``d: false`` at once, or
  with ``notify=False`` silently hear nothing more; every session gets op 9 on its next
  RESUME), ``request_reconnect`` (op 7), counters in ``stats``.

Not served: voice, presences, member chunking (REQUEST_GUILD_MEMBERS is accepted and
ignored), payload compression, etf, the 120-commands-per-minute send limit, the
5-second identify concurrency window, session expiry while disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import zlib
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from core.sandbox import discord_payloads as payloads
from core.sandbox import gateway_sessions as gw
from core.sandbox.clock import Clock
from core.sandbox.discord_state import Channel, DiscordState, Guild, Role
from core.sandbox.options import GatewayLimits

GATEWAY_PATH = "/gateway"
API_VERSION = "10"
_CLOSE = object()  # queued after the frames a close must follow


class Connection:
    """One websocket: an ordered send queue (so dispatches enqueued synchronously go out
    in sequence order) and, once IDENTIFY or RESUME succeeded, its session."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None,
                 compress: bool) -> None:
        self.ws = ws
        self.transport = transport
        self._zlib = zlib.compressobj() if compress else None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.session: gw.Session | None = None
        self.close_code: int | None = None  # what the fake closed it with
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def send(self, frame: gw.Frame) -> None:
        self._queue.put_nowait(frame)

    def close(self, code: int) -> None:
        self.close_code = code
        self._queue.put_nowait((_CLOSE, code))

    def abort(self) -> None:
        """A network drop: the TCP connection goes away without a close frame."""
        if self.transport is not None:
            self.transport.abort()

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, tuple) and item[0] is _CLOSE:
                    reason = gw.CLOSE_REASONS.get(item[1], "").encode()
                    await self.ws.close(code=item[1], message=reason)
                    return
                text = json.dumps(item, separators=(",", ":"))
                if self._zlib is None:
                    await self.ws.send_str(text)
                else:
                    chunk = self._zlib.compress(text.encode()) + self._zlib.flush(
                        zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(chunk)
            except (ConnectionError, RuntimeError):
                return  # the socket went away; the reader side ends the connection


class Gateway:
    """Sessions, connections and counters of the fake gateway."""

    def __init__(self, clock: Clock, state: DiscordState, limits: GatewayLimits,
                 token: Callable[[], str], reset_token: Callable[[], None]) -> None:
        self.clock = clock
        self.state = state
        self.limits = limits
        self._token = token
        self._reset_token = reset_token
        self.sessions: dict[str, gw.Session] = {}
        self.connections: set[Connection] = set()
        self.counters = gw.GatewayCounters()
        self.start_limit = gw.StartLimit(limits.session_starts,
                                         clock.scaled(limits.session_start_window),
                                         limits.max_concurrency)
        self.allowed_privileged = 0
        state.observers.append(self._on_change)

    # ---- numbers -------------------------------------------------------------------------
    @property
    def heartbeat_interval(self) -> float:
        """Real seconds between heartbeats that HELLO asks for."""
        return self.clock.scaled(self.limits.heartbeat_interval)

    def _zombie_after(self) -> float:
        return max(self.heartbeat_interval * self.limits.zombie_after_intervals,
                   self.limits.zombie_floor)

    def bot_info(self, url: str) -> dict[str, Any]:
        """The ``GET /gateway/bot`` body."""
        return {"url": url, "shards": 1,
                "session_start_limit": self.start_limit.view(self.clock.now())}

    # ---- controls ------------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Cut every socket like a network failure; sessions stay resumable."""
        dropped = list(self.connections)
        for conn in dropped:
            conn.abort()
        self.counters.drops += len(dropped)
        return len(dropped)

    def invalidate_sessions(self, notify: bool = True) -> int:
        """Forget every session: a connected one gets op 9 (d: false) now (unless
        ``notify`` is false: then it hears nothing more), any one on its next RESUME."""
        sessions = list(self.sessions.values())
        for session in sessions:
            if notify and session.sink is not None:
                session.sink({"op": gw.INVALID_SESSION, "d": False})
                self.counters.invalid_sessions += 1
            session.sink = None
        for conn in self.connections:
            conn.session = None
        self.sessions.clear()
        return len(sessions)

    def request_reconnect(self) -> int:
        """op 7 RECONNECT to every identified socket (the client resumes elsewhere)."""
        live = [c for c in self.connections if c.session is not None]
        for conn in live:
            conn.send({"op": gw.RECONNECT, "d": None})
        return len(live)

    def stats(self) -> dict[str, Any]:
        return {**self.counters.to_json(), "open_connections": len(self.connections),
                "sessions": len(self.sessions),
                "session_start_limit": self.start_limit.view(self.clock.now()),
                "heartbeat_interval_ms": int(self.heartbeat_interval * 1000)}

    async def close_all(self, _app: web.Application | None = None) -> None:
        """The server shuts down: close every socket (1001, going away)."""
        for conn in list(self.connections):
            conn.close(1001)
        await asyncio.gather(*(c.writer for c in list(self.connections)),
                             return_exceptions=True)

    # ---- dispatch --------------------------------------------------------------------------
    def dispatch(self, event: str, data: Any, guild_id: str | None) -> None:
        for session in list(self.sessions.values()):
            if session.hears(event, guild_id):
                session.push(event, data)
                self.counters.dispatched[event] += 1

    def _on_change(self, kind: str, obj: Any) -> None:
        if isinstance(obj, Channel) and obj.guild_id is not None:
            event = {"channel_create": "CHANNEL_CREATE", "channel_update": "CHANNEL_UPDATE",
                     "channel_delete": "CHANNEL_DELETE"}[kind]
            self.dispatch(event, payloads.channel(self.state, obj), obj.guild_id)
        elif isinstance(obj, Role):
            event = "GUILD_ROLE_CREATE" if kind == "role_create" else "GUILD_ROLE_UPDATE"
            self.dispatch(event, {"guild_id": obj.guild_id, "role": payloads.role(obj)},
                          obj.guild_id)
        elif isinstance(obj, Guild):
            for session in self.sessions.values():
                session.guild_ids.add(obj.id)
            self.dispatch("GUILD_CREATE", self._guild_create(obj), obj.id)

    def _guild_create(self, guild: Guild) -> dict[str, Any]:
        channels = [c for c in self.state.channels.values() if c.guild_id == guild.id]
        bot = guild.members[self.state.bot.id]
        return {
            **payloads.guild(guild), "unavailable": False, "large": False,
            "joined_at": bot.joined_at, "member_count": len(guild.members),
            "members": [payloads.member(self.state, bot)],
            "channels": [{k: v for k, v in payloads.channel(self.state, c).items()
                          if k != "guild_id"} for c in channels],
            "threads": [], "voice_states": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [],
        }

    # ---- the websocket ---------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        transport = request.transport
        await ws.prepare(request)
        compress = request.query.get("compress") == "zlib-stream"
        conn = Connection(ws, transport, compress)
        self.connections.add(conn)
        self.counters.connections += 1
        try:
            if request.query.get("v", API_VERSION) != API_VERSION:
                self._close(conn, gw.INVALID_API_VERSION)
            elif request.query.get("encoding", "json") != "json":
                self._close(conn, gw.DECODE_ERROR)
            else:
                conn.send({"op": gw.HELLO,
                           "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)}})
                await self._read(conn, request.host)
        finally:
            self._detach(conn)
            await self._finish(conn)
        return ws

    async def _read(self, conn: Connection, host: str) -> None:
        while conn.close_code is None:
            try:
                msg = await conn.ws.receive(timeout=self._zombie_after())
            except TimeoutError:
                self.counters.zombies += 1
                self.counters.drops += 1
                conn.abort()
                return
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                if conn.ws.close_code in (1000, 1001) and conn.session is not None:
                    # A clean close by the client ends its session (Discord's rule).
                    self.sessions.pop(conn.session.id, None)
                return
            try:
                frame = json.loads(msg.data)
                op = frame["op"]
            except (ValueError, TypeError, KeyError):
                self._close(conn, gw.DECODE_ERROR)
                return
            self._on_frame(conn, op, frame.get("d"), host)

    def _on_frame(self, conn: Connection, op: Any, data: Any, host: str) -> None:
        if op == gw.HEARTBEAT:
            self.counters.heartbeats += 1
            conn.send({"op": gw.HEARTBEAT_ACK})
        elif op == gw.IDENTIFY:
            self._identify(conn, data if isinstance(data, dict) else {}, host)
        elif op == gw.RESUME:
            self._resume(conn, data if isinstance(data, dict) else {})
        elif op not in gw.CLIENT_OPS:
            self._close(conn, gw.UNKNOWN_OPCODE)
        elif conn.session is None:
            self._close(conn, gw.NOT_AUTHENTICATED)
        # presence, voice state and member requests are accepted and ignored

    def _identify(self, conn: Connection, data: dict[str, Any], host: str) -> None:
        if conn.session is not None:
            self._close(conn, gw.ALREADY_AUTHENTICATED)
            return
        if data.get("token") != self._token():
            self._close(conn, gw.AUTHENTICATION_FAILED)
            return
        code = gw.intents_error(data.get("intents"), self.allowed_privileged)
        guild_ids = shard_guilds = gw.shard_guilds(sorted(self._bot_guilds()),
                                                   data.get("shard"))
        if code is None and shard_guilds is None:
            code = gw.INVALID_SHARD
        if code is not None:
            self._close(conn, code)
            return
        if not self.start_limit.take(self.clock.now()):
            self._exceed_start_limit()
            return
        assert guild_ids is not None
        self.counters.identifies += 1
        session = gw.Session(secrets.token_hex(16), int(data["intents"]), set(guild_ids),
                             self.limits.replay_buffer)
        self.sessions[session.id] = session
        self._attach(conn, session)
        ready: dict[str, Any] = {
            "v": int(API_VERSION), "user": payloads.current_user(self.state.bot),
            "guilds": [{"id": g, "unavailable": True} for g in guild_ids],
            "session_id": session.id, "session_type": "normal",
            "resume_gateway_url": f"ws://{host}{GATEWAY_PATH}",
            "private_channels": [], "relationships": [], "presences": [],
            "application": {"id": self.state.application_id, "flags": 0},
        }
        if data.get("shard") is not None:
            ready["shard"] = data["shard"]
        session.push("READY", ready)
        for gid in guild_ids:
            session.push("GUILD_CREATE", self._guild_create(self.state.guilds[gid]))

    def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        if conn.session is not None:
            self._close(conn, gw.ALREADY_AUTHENTICATED)
            return
        if data.get("token") != self._token():
            self._close(conn, gw.AUTHENTICATION_FAILED)
            return
        session = self.sessions.get(str(data.get("session_id")))
        missed = None if session is None else session.missed(data.get("seq"))
        if session is None or missed is None:
            if session is not None:
                self.sessions.pop(session.id, None)
            self.counters.invalid_sessions += 1
            conn.send({"op": gw.INVALID_SESSION, "d": False})
            return
        for other in self.connections:  # a resumed session leaves its old socket
            if other is not conn and other.session is session:
                other.session = None
                other.abort()
        for frame in missed:
            conn.send(frame)
        self._attach(conn, session)
        self.counters.resumes += 1
        session.push("RESUMED", {})

    def _exceed_start_limit(self) -> None:
        """Discord: all sessions are terminated and the bot's token is reset."""
        self.counters.refused_identifies += 1
        self._reset_token()
        for conn in list(self.connections):
            self._close(conn, gw.AUTHENTICATION_FAILED)
        self.sessions.clear()

    # ---- plumbing --------------------------------------------------------------------------
    def _bot_guilds(self) -> list[str]:
        bot = self.state.bot.id
        return [g.id for g in self.state.guilds.values() if bot in g.members]

    def _attach(self, conn: Connection, session: gw.Session) -> None:
        conn.session = session
        session.sink = conn.send

    def _detach(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if conn.session is not None and conn.session.sink == conn.send:
            conn.session.sink = None
        conn.session = None

    def _close(self, conn: Connection, code: int) -> None:
        self.counters.closes[code] += 1
        conn.close(code)

    async def _finish(self, conn: Connection) -> None:
        if conn.close_code is not None:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await asyncio.wait_for(conn.writer, timeout=5.0)
        conn.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await conn.writer
        if not conn.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.close()
