"""Reads one group's desired state from the database into plain values (the only DB read
a syncer needs before planning). A missing or archived group yields an empty snapshot, so
every syncer converges it to empty."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core import tracing
from core.db.models import Group, Meeting, Membership, User
from core.syncers.snapshot import GroupSnapshot, MeetingInfo, Member


async def load_snapshot(session: AsyncSession, group_id: int, now: datetime) -> GroupSnapshot:
    return await session.run_sync(read_snapshot, group_id, now)


def read_snapshot(session: Session, group_id: int, now: datetime) -> GroupSnapshot:
    """``load_snapshot`` on a sync session: inside a ``Fence.run`` or ``run_sync``."""
    group = session.get(Group, group_id)
    if group is None or group.archived:
        tracing.note("membership", f"group {group_id} is gone or archived: nothing is wanted")
        return GroupSnapshot(group_id=group_id, exists=False)
    members = (
        session.execute(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.group_id == group_id, Membership.left_at.is_(None))
            .order_by(User.id)
        )
    ).scalars()
    meetings = (
        session.execute(
            select(Meeting)
            .where(Meeting.group_id == group_id, Meeting.starts_at > now)
            .order_by(Meeting.starts_at)
        )
    ).scalars()
    snapshot = GroupSnapshot(
        group_id=group_id,
        exists=True,
        name=group.name,
        guild_id=group.discord_guild_id,
        text_channel_id=group.discord_text_channel_id,
        voice_channel_id=group.discord_voice_channel_id,
        role_id=group.discord_role_id,
        calendar_id=group.calendar_id,
        members=tuple(Member(u.id, u.email, u.discord_user_id, u.display_name) for u in members),
        upcoming=tuple(
            MeetingInfo(m.id, m.sequence, m.starts_at, m.duration_minutes) for m in meetings
        ),
    )
    if tracing.current() is not None:
        with_discord = sum(1 for m in snapshot.members if m.discord_user_id)
        tracing.note("membership",
                     f"membership loaded: {len(snapshot.members)} active member(s) "
                     f"({with_discord} with a Discord id), {len(snapshot.upcoming)} upcoming "
                     "meeting(s)")
    return snapshot
