"""One group's desired state as plain values: what the pure plan modules compute from.

No I/O here (the plan modules import this and must stay pure); the database read that
fills it is ``core.syncers.snapshot_loader.load_snapshot``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Member:
    user_id: int
    email: str
    discord_user_id: str | None
    display_name: str


@dataclass(frozen=True)
class MeetingInfo:
    meeting_id: int
    sequence: int
    starts_at: datetime
    duration_minutes: int


@dataclass(frozen=True)
class GroupSnapshot:
    group_id: int
    exists: bool
    name: str = ""
    guild_id: str | None = None
    text_channel_id: str | None = None
    voice_channel_id: str | None = None
    role_id: str | None = None
    calendar_id: str | None = None
    members: tuple[Member, ...] = ()
    upcoming: tuple[MeetingInfo, ...] = ()
