"""Small builders for test data: a test states only what it cares about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Group, Meeting, User

_ids = count(1)


async def make_user(session: AsyncSession, *, discord: bool = True, **fields: object) -> User:
    n = next(_ids)
    user = User(
        email=f"user{n}@example.org",
        discord_user_id=str(100000 + n) if discord else None,
        display_name=f"User {n}",
        **fields,
    )
    session.add(user)
    await session.flush()
    return user


async def make_group(session: AsyncSession, **fields: object) -> Group:
    n = next(_ids)
    defaults: dict[str, object] = {
        "name": f"Group {n}",
        "discord_guild_id": "900",
        "discord_text_channel_id": str(5000 + n),
        "discord_voice_channel_id": str(7000 + n),
        "calendar_id": f"group{n}@group.calendar.example",
    }
    group = Group(**{**defaults, **fields})
    session.add(group)
    await session.flush()
    return group


async def make_meeting(
    session: AsyncSession, group: Group, *, in_days: float = 7, sequence: int = 1
) -> Meeting:
    meeting = Meeting(
        group_id=group.id,
        starts_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=in_days),
        duration_minutes=60,
        sequence=sequence,
    )
    session.add(meeting)
    await session.flush()
    return meeting
