"""What the syncers need from Discord and Google Calendar: the one narrow seam per service.

Adapters in this folder implement these with discord.py and google-api-python-client;
every method raises only ``core.errors`` types (``TransientError`` / ``RateLimitedError``
with ``retry_after``, ``CircuitOpenError``, ``NeedsAttentionError`` with the service's own
message and code). Ids are strings (Discord snowflakes, Google ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from core.lanes import Lane

MEMBER_OVERWRITE = 1  # Discord overwrite type: 0 role, 1 member
ROLE_OVERWRITE = 0


@dataclass(frozen=True)
class Overwrite:
    target_id: str
    type: int  # ROLE_OVERWRITE or MEMBER_OVERWRITE
    allow: int
    deny: int


@dataclass(frozen=True)
class PostedMessage:
    message_id: str
    content: str


class DiscordPort(Protocol):
    async def channel_overwrites(self, channel_id: str, lane: Lane) -> dict[str, Overwrite]:
        """Current permission overwrites of a channel, by target id. Raises
        NeedsAttentionError(code=10003) when the channel does not exist."""
        ...

    async def set_member_overwrite(
        self, channel_id: str, user_id: str, allow: int, deny: int, lane: Lane, reason: str
    ) -> None: ...

    async def delete_member_overwrite(
        self, channel_id: str, user_id: str, lane: Lane, reason: str
    ) -> None:
        """Idempotent: an overwrite that is already gone is not an error."""
        ...

    async def member_role_ids(self, guild_id: str, user_id: str, lane: Lane) -> frozenset[str]:
        """The roles a guild member holds now (empty when they are not in the guild)."""
        ...

    async def add_member_role(
        self, guild_id: str, user_id: str, role_id: str, lane: Lane, reason: str
    ) -> None: ...

    async def remove_member_role(
        self, guild_id: str, user_id: str, role_id: str, lane: Lane, reason: str
    ) -> None:
        """Idempotent: a member or role already gone is not an error."""
        ...

    async def send_message(
        self,
        channel_id: str,
        content: str,
        nonce: str,
        lane: Lane,
        mention_user_ids: Sequence[str] = (),
    ) -> str:
        """Post with Discord's nonce + enforce_nonce so a retried post is not doubled.
        Mentions in ``content`` ping nobody (no @everyone, @here or roles) except the
        users in ``mention_user_ids``. Returns the message id."""
        ...

    async def own_messages_since(
        self, channel_id: str, since: datetime, lane: Lane, limit: int = 100
    ) -> list[PostedMessage]:
        """The bot's own messages among the first ``limit`` posted in the channel at or
        after ``since`` (GET /channels/{id}/messages?after=…), oldest first: how a sender
        finds out whether a post whose outcome it never learned did land."""
        ...


class CalendarPort(Protocol):
    async def get_event(self, calendar_id: str, event_id: str, lane: Lane) -> dict[str, Any] | None:
        """The event (cancelled ones included), or None when it never existed."""
        ...

    async def insert_event(
        self, calendar_id: str, body: dict[str, Any], send_updates: str, lane: Lane
    ) -> dict[str, Any]:
        """Insert with the client-chosen ``body["id"]``; a 409 duplicate (a retried insert)
        returns the existing event instead of failing."""
        ...

    async def update_event(
        self,
        calendar_id: str,
        event_id: str,
        body: dict[str, Any],
        etag: str | None,
        send_updates: str,
        lane: Lane,
    ) -> dict[str, Any] | None:
        """Full update with If-Match when an etag is given (1 quota unit; patch costs 3).
        Returns None on 412 (someone else changed it): the caller re-reads and re-applies."""
        ...

    async def delete_event(
        self, calendar_id: str, event_id: str, send_updates: str, lane: Lane
    ) -> None:
        """Idempotent: 404/410 (already gone) is success."""
        ...

    async def list_events(
        self,
        calendar_id: str,
        private_property: tuple[str, str],
        lane: Lane,
        show_deleted: bool = False,
    ) -> list[dict[str, Any]]:
        """Every event carrying the private extended property key=value (all pages);
        ``show_deleted`` includes cancelled ones (a person's deletion)."""
        ...

    async def list_changes(
        self, calendar_id: str, sync_token: str | None, lane: Lane
    ) -> CalendarChanges | None:
        """Every event changed since ``sync_token`` (all pages, cancelled ones included),
        or, with no token, every event of the calendar: a full sync. None when Google
        answers 410 (the token expired): the caller starts again with a full sync."""
        ...


@dataclass(frozen=True)
class WatchedChannel:
    resource_id: str  # Google's id of the watched resource (channels.stop names it)
    expiration_ms: int  # when Google stops sending, epoch milliseconds


@runtime_checkable
class CalendarPushPort(Protocol):
    """Push channels on a calendar's events (events.watch / channels.stop)."""

    async def watch_events(self, calendar_id: str, channel_id: str, address: str, token: str,
                           ttl_seconds: float, lane: Lane) -> WatchedChannel:
        """Open a channel posting to ``address`` with ``token`` on every change."""
        ...

    async def stop_channel(self, channel_id: str, resource_id: str, lane: Lane) -> None:
        """End a channel; one Google no longer knows (404) counts as ended."""
        ...


@dataclass(frozen=True)
class CalendarChanges:
    events: list[dict[str, Any]]
    next_sync_token: str | None  # where the next incremental list starts

