"""Public entry points for application code around membership changes (DESIGN §2).

Application code changes membership inside its own transaction with ``join_group``,
``leave_group`` or ``switch_group`` (each records the owed syncs through
``request_group_sync`` in that same transaction), commits, then calls
``sync_after_group_change`` to sync right away. If the process dies between the two,
the daemon still performs the sync from the outbox rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Group, MemberRole, Membership, SyncType, User
from core.db.problems import describe_database_error
from core.engine.outbox import mark_owed
from core.engine.state import SyncKey
from core.errors import InvalidArgument, UnknownGroupError
from core.lifecycle import mark_and_run
from core.notifications import handoff
from core.notifications.scheduler import current_runtime, on_runtime_loop
from core.observability import get_logger
from core.validation import optional_group_id, require_group_id

log = get_logger("groupsync.group_joining")


async def request_group_sync(
    session: AsyncSession, group_id: int, previous_group_id: int | None = None
) -> None:
    """Record, in the caller's transaction, that every sync of these groups is owed."""
    group_id = require_group_id(group_id)
    previous_group_id = optional_group_id(previous_group_id)
    groups = [group_id] if previous_group_id is None else [previous_group_id, group_id]
    await mark_owed(session, groups, _now())


async def join_group(
    session: AsyncSession,
    user_id: int,
    group_id: int,
    role: MemberRole = MemberRole.PARTICIPANT,
    *,
    now: datetime | None = None,
) -> Membership:
    """Make the user an active member. The database refuses a second active membership."""
    user_id = require_group_id(user_id, "user_id")
    group_id = require_group_id(group_id)
    await _require_exists(session, user_id, group_id)
    membership = Membership(
        user_id=user_id, group_id=group_id, role=MemberRole(role).value, joined_at=now or _now()
    )
    session.add(membership)
    await session.flush()
    await request_group_sync(session, group_id)
    return membership


async def leave_group(
    session: AsyncSession, user_id: int, *, now: datetime | None = None
) -> int | None:
    """End the user's active membership. Returns the group left, or None if there was none."""
    user_id = require_group_id(user_id, "user_id")
    membership = await _active_membership(session, user_id)
    if membership is None:
        return None
    membership.left_at = now or _now()
    await session.flush()
    await request_group_sync(session, membership.group_id)
    return membership.group_id


async def switch_group(
    session: AsyncSession, user_id: int, new_group_id: int, *, now: datetime | None = None
) -> int | None:
    """Move the user to another group; both the old and the new group become owed."""
    user_id = require_group_id(user_id, "user_id")
    new_group_id = require_group_id(new_group_id, "new_group_id")
    await _require_exists(session, user_id, new_group_id)
    at = now or _now()
    current = await _active_membership(session, user_id)
    if current is not None and current.group_id == new_group_id:
        return new_group_id
    previous_group_id = None
    role = MemberRole.PARTICIPANT.value
    if current is not None:
        current.left_at = at
        previous_group_id, role = current.group_id, current.role
        await session.flush()  # the old row must be inactive before the new one is inserted
    session.add(Membership(user_id=user_id, group_id=new_group_id, role=role, joined_at=at))
    await session.flush()
    await request_group_sync(session, new_group_id, previous_group_id)
    return previous_group_id


async def _active_membership(session: AsyncSession, user_id: int) -> Membership | None:
    result = await session.execute(
        select(Membership).where(Membership.user_id == user_id, Membership.left_at.is_(None))
    )
    return result.scalar_one_or_none()


async def _require_exists(session: AsyncSession, user_id: int, group_id: int) -> None:
    group = await session.get(Group, group_id)
    if group is None:
        raise UnknownGroupError(group_id)
    if group.archived:
        raise InvalidArgument(f"group {group_id} is archived; nobody can join it")
    if await session.get(User, user_id) is None:
        raise InvalidArgument(f"user {user_id} does not exist")


def _now() -> datetime:
    return datetime.now(UTC)


async def sync_after_group_change(group_id: int, previous_group_id: int | None = None) -> None:
    """Sync after a membership commit (DESIGN §2): the old group first when switching,
    then the new one, each in the order discord, calendar, reminders, rsvps. Never raises
    because a sync failed: each failure is logged, recorded, reported and retried.

    With a runtime leading in this process the syncs run here; otherwise the keys are
    handed off (marked owed, the daemon woken) and nothing else happens in this process."""
    group_id = require_group_id(group_id)
    previous_group_id = optional_group_id(previous_group_id)
    groups = [group_id] if previous_group_id in (None, group_id) else [previous_group_id, group_id]
    rt = current_runtime()
    if rt is None:
        await handoff.hand_off(groups)
        return
    keys = [SyncKey(t, g) for g in groups for t in SyncType]
    try:
        await on_runtime_loop(rt, mark_and_run(rt, keys))
    except Exception as exc:  # the database, not a sync (those are recorded, not raised)
        log.error("sync_not_started", group_ids=groups, error=describe_database_error(exc),
                  outcome="the outbox rows of the commit stay owed")
