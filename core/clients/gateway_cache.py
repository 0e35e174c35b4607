"""Pure: the Discord gateway's picture of the guilds' channels and their overwrites, and
when a sync may read it instead of ``GET /channels/{id}`` (DESIGN §4).

Fed with the gateway's payloads (READY, GUILD_CREATE, CHANNEL_CREATE / UPDATE / DELETE,
RESUMED, a lost connection) by ``core.clients.discord_gateway``; read by
``core.clients.cached_discord``. A channel's overwrites are trustworthy only while

- the link is up: connected, READY seen, and the channel's guild sent in full since;
- the channel is known and not deleted (an unknown or deleted channel is read over REST,
  whose 404 names the missing target as before);
- no write of ours to the channel is waiting for its echo (each write is *expected*
  until a CHANNEL_UPDATE shows it; one whose echo does not come within
  ``echo_timeout`` makes the channel untrusted until its next full update).

Anything else answers None: read over REST. The gateway may make a sync faster, never
wrong. Every change to a known channel comes back as a ``ChannelChange`` (before and
after), flagged ``echo`` when what changed is exactly what our own writes expected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.clients.ports import Overwrite

Overwrites = Mapping[str, Overwrite]
MAX_EXPECTED = 1000  # past this many writes awaiting echoes, the expired ones are swept


class LinkState(StrEnum):
    DISCONNECTED = "disconnected"  # never connected, or connection lost with no session
    CONNECTING = "connecting"  # a new session: READY or the guilds not yet in
    RESUMING = "resuming"  # connection lost; the session may be resumed
    CONNECTED = "connected"  # READY and every guild in: the cache is current


@dataclass(frozen=True)
class ChannelChange:
    channel_id: str
    guild_id: str | None
    before: Overwrites | None  # None: the channel was not known
    after: Overwrites | None  # None: the channel was deleted
    echo: bool = False  # only our own expected writes changed
    how: str = "update"  # "update", "delete", or "resync" (a new session's full guild)

    @property
    def changed_targets(self) -> list[str]:
        before, after = self.before or {}, self.after or {}
        return sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))


@dataclass
class _Expected:
    channel_id: str
    target_id: str
    overwrite: Overwrite | None  # None: the overwrite is removed
    deadline: float


@dataclass
class _Channel:
    guild_id: str | None
    overwrites: dict[str, Overwrite] = field(default_factory=dict)
    stale: bool = False  # an echo of ours never came: REST until the next full update


def parse_overwrites(payload: Iterable[Mapping[str, Any]] | None) -> dict[str, Overwrite]:
    """Discord's ``permission_overwrites`` as the port's Overwrite (the REST read's shape)."""
    return {
        str(o["id"]): Overwrite(str(o["id"]), int(o["type"]), int(o["allow"]), int(o["deny"]))
        for o in payload or ()
    }


class ChannelCache:
    def __init__(self, echo_timeout: float, now: Callable[[], float],
                 wall: Callable[[], float] = time.time) -> None:
        self._echo_timeout = echo_timeout
        self._now = now  # monotonic: echo deadlines and the cache's age
        self._wall = wall  # for operators: since when the link is in its state
        self._channels: dict[str, _Channel] = {}
        self._deleted: set[str] = set()
        self._expected: dict[int, _Expected] = {}
        self._next_token = 0
        self._waiting_guilds: set[str] = set()  # named by READY, GUILD_CREATE not yet in
        self._session = False  # READY seen on the current connection
        self.state = LinkState.DISCONNECTED
        self.state_since = wall()
        self.last_event: float | None = None

    # ---- the link ------------------------------------------------------------------------
    def session_started(self, guild_ids: Iterable[str]) -> None:
        """READY of a new session: the old picture stands until each guild is sent again."""
        self._session = True
        self._waiting_guilds = set(guild_ids)
        self._set_state(LinkState.CONNECTED if not self._waiting_guilds
                        else LinkState.CONNECTING)
        self._seen()

    def guild_available(self, guild_id: str, channels: Iterable[Mapping[str, Any]]
                        ) -> list[ChannelChange]:
        """A guild in full (GUILD_CREATE): what differs from the old picture comes back as
        changes, so nothing that happened while disconnected is lost."""
        self._seen()
        fresh = {str(c["id"]): parse_overwrites(c.get("permission_overwrites")) for c in channels}
        changes = []
        for channel_id, gone in list(self._channels.items()):
            if gone.guild_id == guild_id and channel_id not in fresh:
                del self._channels[channel_id]
                self._deleted.add(channel_id)
                changes.append(ChannelChange(channel_id, guild_id, gone.overwrites, None,
                                             how="resync"))
        for channel_id, overwrites in fresh.items():
            known = self._channels.get(channel_id)
            self._deleted.discard(channel_id)
            self._channels[channel_id] = _Channel(guild_id, dict(overwrites))
            self._drop_expected(channel_id, overwrites)
            if known is not None and known.overwrites != overwrites:
                changes.append(ChannelChange(channel_id, guild_id, known.overwrites,
                                             overwrites, how="resync"))
        self._waiting_guilds.discard(guild_id)
        if self._session and not self._waiting_guilds:
            self._set_state(LinkState.CONNECTED)
        return changes

    def resumed(self) -> None:
        """RESUMED: the missed events were replayed before it; the picture is current."""
        self._seen()
        if self._session:
            self._set_state(LinkState.CONNECTED if not self._waiting_guilds
                            else LinkState.CONNECTING)

    def connection_lost(self, resumable: bool = True) -> None:
        if not resumable:
            self._session = False
        if self.state is not LinkState.DISCONNECTED:
            self._set_state(LinkState.RESUMING if resumable and self._session
                            else LinkState.DISCONNECTED)

    def closed(self) -> None:
        self._session = False
        self._set_state(LinkState.DISCONNECTED)

    @property
    def up(self) -> bool:
        return self.state is LinkState.CONNECTED

    # ---- channel events ------------------------------------------------------------------
    def channel_updated(self, data: Mapping[str, Any]) -> ChannelChange | None:
        """CHANNEL_CREATE or CHANNEL_UPDATE (the channel in full). None for a channel
        outside any guild, or one whose overwrites did not change."""
        self._seen()
        guild_id = _guild_of(data)
        if guild_id is None:
            return None
        channel_id = str(data["id"])
        overwrites = parse_overwrites(data.get("permission_overwrites"))
        known = self._channels.get(channel_id)
        before = dict(known.overwrites) if known is not None else None
        expected = self._expected_on(channel_id)
        self._deleted.discard(channel_id)
        self._channels[channel_id] = _Channel(guild_id, dict(overwrites))
        self._drop_expected(channel_id, overwrites)
        if before is None or before == overwrites:
            return None
        change = ChannelChange(channel_id, guild_id, before, overwrites)
        echo = all(
            any(e.target_id == t and e.overwrite == overwrites.get(t) for e in expected)
            for t in change.changed_targets
        )
        return ChannelChange(channel_id, guild_id, before, overwrites, echo=echo)

    def channel_deleted(self, data: Mapping[str, Any]) -> ChannelChange | None:
        self._seen()
        channel_id = str(data["id"])
        known = self._channels.pop(channel_id, None)
        self._deleted.add(channel_id)
        for token in [t for t, e in self._expected.items() if e.channel_id == channel_id]:
            del self._expected[token]
        if known is None and _guild_of(data) is None:
            return None
        return ChannelChange(channel_id, known.guild_id if known else _guild_of(data),
                             dict(known.overwrites) if known else None, None, how="delete")

    # ---- reads and our writes ------------------------------------------------------------
    def overwrites(self, channel_id: str) -> dict[str, Overwrite] | None:
        """The channel's overwrites when trustworthy, else None (read over REST)."""
        if not self.up or channel_id in self._deleted:
            return None
        channel = self._channels.get(channel_id)
        if channel is None or channel.stale:
            return None
        now = self._now()
        for token, expected in list(self._expected.items()):
            if expected.channel_id != channel_id:
                continue
            if expected.deadline > now:
                return None  # our write's echo is still on its way
            del self._expected[token]
            channel.stale = True  # it never came: this picture may miss our write
            return None
        return dict(channel.overwrites)

    def expect(self, channel_id: str, target_id: str, overwrite: Overwrite | None) -> int:
        """Before a write of ours: the channel is untrusted until its echo shows it."""
        if len(self._expected) > MAX_EXPECTED:
            self._expire()  # no link (or a silent one): the dict stays bounded
        self._next_token += 1
        self._expected[self._next_token] = _Expected(
            channel_id, target_id, overwrite, self._now() + self._echo_timeout)
        return self._next_token

    def write_done(self, token: int, *, applied: bool | None) -> None:
        """The write's answer: ``applied`` False (refused: nothing changed) or True with
        the picture already showing it (its echo came first, or it changed nothing)
        settles it; otherwise its echo is still awaited."""
        expected = self._expected.get(token)
        if expected is None:
            return
        if applied is False:
            del self._expected[token]
            return
        channel = self._channels.get(expected.channel_id)
        if applied and channel is not None and (
            channel.overwrites.get(expected.target_id) == expected.overwrite
        ):
            del self._expected[token]

    # ---- for status and metrics ----------------------------------------------------------
    def age(self) -> float | None:
        """Seconds since the gateway last sent anything the cache took in."""
        return None if self.last_event is None else max(0.0, self._now() - self.last_event)

    @property
    def channels(self) -> int:
        return len(self._channels)

    @property
    def awaiting_echo(self) -> int:
        return len(self._expected)

    # ---- internals -----------------------------------------------------------------------
    def _set_state(self, state: LinkState) -> None:
        if state is not self.state:
            self.state, self.state_since = state, self._wall()

    def _seen(self) -> None:
        self.last_event = self._now()

    def _expire(self) -> None:
        now = self._now()
        for token, expected in list(self._expected.items()):
            if expected.deadline <= now:
                del self._expected[token]
                channel = self._channels.get(expected.channel_id)
                if channel is not None:
                    channel.stale = True

    def _expected_on(self, channel_id: str) -> list[_Expected]:
        return [e for e in self._expected.values() if e.channel_id == channel_id]

    def _drop_expected(self, channel_id: str, overwrites: Overwrites) -> None:
        """A full picture of the channel settles every expected write it shows."""
        for token, expected in list(self._expected.items()):
            if (expected.channel_id == channel_id
                    and overwrites.get(expected.target_id) == expected.overwrite):
                del self._expected[token]


def _guild_of(data: Mapping[str, Any]) -> str | None:
    guild = data.get("guild_id")
    return None if guild is None else str(guild)
