"""Gateway sessions of the fake Discord: sequence numbers, replay buffers, identify limits.

No I/O here: a session hands each dispatch to its live connection through ``sink``
(a synchronous enqueue) and keeps it for a RESUME; the websocket side lives in
``discord_gateway``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Frame = dict[str, Any]

# Opcodes (docs: topics/opcodes-and-status-codes).
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE_UPDATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    6, 7, 8, 9, 10, 11)
CLIENT_OPS = frozenset({HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE_UPDATE, RESUME,
                        REQUEST_GUILD_MEMBERS})

# Close codes Discord sends, with its reason text.
UNKNOWN_OPCODE, DECODE_ERROR, NOT_AUTHENTICATED, AUTHENTICATION_FAILED = 4001, 4002, 4003, 4004
ALREADY_AUTHENTICATED, INVALID_SHARD, INVALID_API_VERSION = 4005, 4010, 4012
INVALID_INTENTS, DISALLOWED_INTENTS = 4013, 4014
CLOSE_REASONS = {
    UNKNOWN_OPCODE: "Unknown opcode.", DECODE_ERROR: "Error while decoding payload.",
    NOT_AUTHENTICATED: "Not authenticated.", AUTHENTICATION_FAILED: "Authentication failed.",
    ALREADY_AUTHENTICATED: "Already authenticated.", INVALID_SHARD: "Invalid shard.",
    INVALID_API_VERSION: "Invalid API version.", INVALID_INTENTS: "Invalid intent(s).",
    DISALLOWED_INTENTS: "Disallowed intent(s).",
}

GUILDS_INTENT = 1 << 0
GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT = 1 << 1, 1 << 8, 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
# Every intent bit Discord defines (0-16, 20, 21, 24, 25); any other bit is 4013.
VALID_INTENTS = (1 << 17) - 1 | 1 << 20 | 1 << 21 | 1 << 24 | 1 << 25
# Events the GUILDS intent carries; a session without it hears none of them.
GUILDS_EVENTS = frozenset({
    "GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE", "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE",
    "CHANNEL_PINS_UPDATE", "THREAD_CREATE", "THREAD_UPDATE", "THREAD_DELETE",
})


def intents_error(intents: Any, allowed_privileged: int) -> int | None:
    """The close code an IDENTIFY's ``intents`` earns, or None when they are fine."""
    if isinstance(intents, bool) or not isinstance(intents, int) or intents < 0:
        return INVALID_INTENTS
    if intents & ~VALID_INTENTS:
        return INVALID_INTENTS
    if intents & PRIVILEGED_INTENTS & ~allowed_privileged:
        return DISALLOWED_INTENTS
    return None


def shard_guilds(guild_ids: list[str], shard: Any) -> list[str] | None:
    """The guilds a shard ``[id, count]`` carries (Discord: ``(guild_id >> 22) % count``);
    None for a malformed shard."""
    if shard is None:
        return list(guild_ids)
    if (not isinstance(shard, list) or len(shard) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)):
        return None
    shard_id, count = shard
    if count < 1 or not 0 <= shard_id < count:
        return None
    return [g for g in guild_ids if (int(g) >> 22) % count == shard_id]


@dataclass
class Session:
    """One IDENTIFY's session: what it hears, and what it may replay on RESUME."""

    id: str
    intents: int
    guild_ids: set[str]
    buffer_size: int
    seq: int = 0
    sink: Callable[[Frame], None] | None = None  # the connected socket's enqueue, if any
    buffer: deque[Frame] = field(init=False)

    def __post_init__(self) -> None:
        self.buffer = deque(maxlen=self.buffer_size)

    def hears(self, event: str, guild_id: str | None) -> bool:
        if guild_id is not None and guild_id not in self.guild_ids:
            return False
        return event not in GUILDS_EVENTS or bool(self.intents & GUILDS_INTENT)

    def push(self, event: str, data: Any) -> Frame:
        """The next dispatch: numbered, kept for a RESUME, sent if a socket is attached."""
        self.seq += 1
        frame: Frame = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.buffer.append(frame)
        if self.sink is not None:
            self.sink(frame)
        return frame

    def missed(self, after_seq: Any) -> list[Frame] | None:
        """Dispatches after ``after_seq``; None when they cannot all be replayed."""
        if isinstance(after_seq, bool) or not isinstance(after_seq, int):
            return None
        if not 0 <= after_seq <= self.seq:
            return None
        oldest = self.buffer[0]["s"] if self.buffer else self.seq + 1
        if after_seq + 1 < oldest:
            return None  # fell out of the buffer
        return [f for f in self.buffer if f["s"] > after_seq]


@dataclass
class StartLimit:
    """``session_start_limit``: identifies left in a window that starts at the first one."""

    total: int
    window: float  # real seconds
    max_concurrency: int
    remaining: int = field(init=False)
    resets_at: float | None = None

    def __post_init__(self) -> None:
        self.remaining = self.total

    def _refresh(self, now: float) -> None:
        if self.resets_at is not None and now >= self.resets_at:
            self.remaining, self.resets_at = self.total, None

    def view(self, now: float) -> dict[str, int]:
        self._refresh(now)
        left = self.window if self.resets_at is None else self.resets_at - now
        return {"total": self.total, "remaining": self.remaining,
                "reset_after": max(int(left * 1000), 0),
                "max_concurrency": self.max_concurrency}

    def take(self, now: float) -> bool:
        self._refresh(now)
        if self.remaining <= 0:
            return False
        if self.resets_at is None:
            self.resets_at = now + self.window
        self.remaining -= 1
        return True

    def set(self, now: float, *, total: int | None = None, remaining: int | None = None) -> None:
        self._refresh(now)
        if total is not None:
            self.total = total
        if remaining is not None:
            self.remaining = remaining
            if self.resets_at is None:
                self.resets_at = now + self.window


@dataclass
class GatewayCounters:
    """What tests read: how often clients connected, identified, resumed, were refused."""

    connections: int = 0  # websockets opened
    identifies: int = 0  # IDENTIFYs that started a session
    refused_identifies: int = 0  # over the session start limit
    resumes: int = 0  # RESUMEs that replayed and got RESUMED
    invalid_sessions: int = 0  # op 9 sent (refused RESUMEs and invalidations)
    heartbeats: int = 0
    drops: int = 0  # connections cut without a close frame (control or zombie)
    zombies: int = 0  # connections cut for sending no heartbeat
    closes: Counter[int] = field(default_factory=Counter)  # close codes sent by the fake
    dispatched: Counter[str] = field(default_factory=Counter)  # per event, per session

    def to_json(self) -> dict[str, Any]:
        return {
            "connections": self.connections, "identifies": self.identifies,
            "refused_identifies": self.refused_identifies, "resumes": self.resumes,
            "invalid_sessions": self.invalid_sessions, "heartbeats": self.heartbeats,
            "drops": self.drops, "zombies": self.zombies,
            "closes": {str(k): v for k, v in self.closes.items()},
            "dispatched": dict(self.dispatched),
        }
