"""Calendar push notifications received (issue 22): who sent them, and what they wake.

Google POSTs each notification with its channel's id and the secret token we gave the
channel (``X-Goog-Channel-ID`` / ``X-Goog-Channel-Token``; core/engine/loops/calendar_push.py
keeps both in ``calendar_push_channels``). Only a stored channel with the same token is
believed, compared in constant time; an unknown channel costs the same comparison. A
believed ``exists`` message wakes the incremental list of that channel's calendar in the
leading runtime; the ``sync`` handshake wakes nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy import select

from core.db.models import CalendarPushChannel
from core.db.session import SessionFactory

# Compared against when the channel is unknown, so its answer takes as long as a wrong token.
_NO_TOKEN = b"\0" * 43


@dataclass(frozen=True)
class Notification:
    channel_id: str | None
    token: str | None
    resource_state: str | None


@dataclass(frozen=True)
class Verdict:
    calendar_id: str | None  # the channel's calendar when the notification is believed
    why: str = ""  # why it is not ("unknown channel", "wrong channel token"); never the token

    @property
    def believed(self) -> bool:
        return self.calendar_id is not None


async def verify(sessions: SessionFactory, note: Notification) -> Verdict:
    stored: tuple[str, str] | None = None
    if note.channel_id:
        async with sessions() as session:
            row = (await session.execute(
                select(CalendarPushChannel.calendar_id, CalendarPushChannel.token)
                .where(CalendarPushChannel.channel_id == note.channel_id))).first()
            stored = None if row is None else (row[0], row[1])
    expected = stored[1].encode() if stored is not None else _NO_TOKEN
    given = (note.token or "").encode()
    matches = hmac.compare_digest(expected, given)
    if stored is None:
        return Verdict(None, "unknown channel")
    if not note.token or not matches:
        return Verdict(None, "wrong channel token")
    return Verdict(stored[0])
