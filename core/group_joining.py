"""Public entry points for application code around membership changes (DESIGN §2).

Application code changes membership inside its own transaction with ``join_group``,
``leave_group`` or ``switch_group`` (each records the owed syncs through
``request_group_sync`` in that same transaction), commits, then calls
``sync_after_group_change`` to sync right away. If the process dies between the two,
the daemon still performs the sync from the outbox rows.

``sync_after_group_change`` reaches the syncs through names of this module
(``sync_group_discord_permissions``, ``sync_group_calendar``, ``sync_group_reminders``,
``sync_group_rsvps``, ``schedule_sync_retry``, ``sentry_sdk``): the applications' own
tests patch them here and assert the orchestration (DESIGN §2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import sentry_sdk
from sqlalchemy import Table, and_, bindparam, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from core.db.models import Group, MemberRole, Membership, SyncType, User
from core.engine.running.outbox import mark_owed
from core.errors import InvalidArgument, UnknownGroupError
from core.lifecycle import (
    sync_group,
    sync_group_calendar,
    sync_group_discord_permissions,
    sync_group_reminders,
    sync_group_rsvps,
)
from core.notifications.scheduler import schedule_sync_retry
from core.observability import get_logger
from core.process import handoff
from core.syncers import types as sync_type_registry
from core.syncers.base import SyncResult
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
    await _active_checked(session, user_id, group_id)  # the database refuses a second one
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
    current = await _active_checked(session, user_id, new_group_id)
    if current is not None and current.group_id == new_group_id:
        return new_group_id
    at = now or _now()
    previous_group_id, role = None, MemberRole.PARTICIPANT.value
    # Core statements, no unit of work: a bulk reshuffle makes a thousand switches in one
    # transaction, and the ORM's flush was the largest part of each. The old row is left
    # before the new one is inserted (one active membership per user).
    if current is not None:
        previous_group_id, role = current.group_id, current.role
        await session.execute(_LEAVE, {"b_id": current.id, "b_at": at})
        _left_in_session(session, current.id, at)
    await session.execute(_JOIN, {"user_id": user_id, "group_id": new_group_id, "role": role,
                                  "joined_at": at, "left_at": None})
    await request_group_sync(session, new_group_id, previous_group_id)
    return previous_group_id


_MEMBERSHIPS: Table = Membership.__table__  # type: ignore[assignment]
_LEAVE = (update(_MEMBERSHIPS).where(_MEMBERSHIPS.c.id == bindparam("b_id"))
          .values(left_at=bindparam("b_at")))
_JOIN = insert(_MEMBERSHIPS)


@dataclass(frozen=True)
class _Current:
    id: int
    group_id: int
    role: str


async def _active_checked(session: AsyncSession, user_id: int, group_id: int) -> _Current | None:
    """The user's active membership, checking in the same row read that the group exists
    and is not archived and that the user exists (one row, no objects loaded: a bulk
    reshuffle switches a thousand users in one transaction). An ORM-enabled select: the
    caller's pending changes are flushed first."""
    found = (await session.execute(
        select(Group.archived, exists().where(User.id == user_id),
               Membership.id, Membership.group_id, Membership.role)
        .select_from(Group)
        .outerjoin(Membership, and_(Membership.user_id == user_id, Membership.left_at.is_(None)))
        .where(Group.id == group_id)
    )).one_or_none()
    if found is None:
        raise UnknownGroupError(group_id)
    archived, user_exists, membership_id, current_group, role = found
    _refuse(group_id, user_id, archived=archived, user_exists=user_exists)
    return None if membership_id is None else _Current(membership_id, current_group, role)


def _left_in_session(session: AsyncSession, membership_id: int, at: datetime) -> None:
    """A Membership the caller's session holds shows the row as it now is (left), and is
    not written again by a later flush."""
    held = session.identity_map.get(identity_key(Membership, membership_id))
    if held is not None:
        set_committed_value(held, "left_at", at)


async def _active_membership(session: AsyncSession, user_id: int) -> Membership | None:
    result = await session.execute(
        select(Membership).where(Membership.user_id == user_id, Membership.left_at.is_(None))
    )
    return result.scalar_one_or_none()


def _refuse(group_id: int, user_id: int, *, archived: bool, user_exists: bool) -> None:
    if archived:
        raise InvalidArgument(f"group {group_id} is archived; nobody can join it")
    if not user_exists:
        raise InvalidArgument(f"user {user_id} does not exist")


def _now() -> datetime:
    return datetime.now(UTC)


SyncCall = Callable[[int], Awaitable[SyncResult]]


async def sync_after_group_change(group_id: int, previous_group_id: int | None = None) -> None:
    """Sync after a membership commit (DESIGN §2): the old group first when switching,
    then the new one, each in the order discord, calendar, reminders, rsvps. Never raises
    because a sync failed: each failure (a result with ``"error"`` or ``"failed" > 0``, or
    an exception) is logged, an exception reported to Sentry, and a retry scheduled with
    ``schedule_sync_retry(sync_type=…, group_id=…, attempt=0, previous_group_id=…)``.

    The syncs start in that order and run side by side (a slow service never delays the
    others). With a runtime in this process they run here; otherwise each is handed off
    to the daemon, all in one write at the end of the change."""
    group_id = require_group_id(group_id)
    previous_group_id = optional_group_id(previous_group_id)
    groups = [group_id] if previous_group_id in (None, group_id) else [previous_group_id, group_id]
    calls = [(sync_type, group, call) for group in groups for sync_type, call in _syncs()]
    async with handoff.one_write():
        # Calling them here, in order, is what starts them in order; gather only awaits.
        pending = [call(group) for _, group, call in calls]
        results = await asyncio.gather(*pending, return_exceptions=True)
    for (sync_type, group, _), result in zip(calls, results, strict=True):
        if _failed(sync_type, group, result):
            _schedule_retry(sync_type, group, previous_group_id)


def _syncs() -> list[tuple[str, SyncCall]]:
    """Each sync type with the function that runs it, read from this module's names at
    call time (so a patch here takes effect); a type beyond the four public ones runs
    through ``core.lifecycle.sync_group``."""
    public: dict[str, SyncCall] = {
        SyncType.DISCORD: sync_group_discord_permissions,
        SyncType.CALENDAR: sync_group_calendar,
        SyncType.REMINDERS: sync_group_reminders,
        SyncType.RSVPS: sync_group_rsvps,
    }
    return [(t, public.get(t) or partial(sync_group, t)) for t in sync_type_registry.names()]


def _failed(sync_type: str, group_id: int, result: object) -> bool:
    if isinstance(result, Exception):
        sentry_sdk.capture_exception(result)
        log.error("sync_raised", sync_type=sync_type, group_id=group_id,
                  error=f"{type(result).__name__}: {result}"[:500], outcome="retry scheduled")
        return True
    if isinstance(result, BaseException):  # cancellation and the like are not ours to keep
        raise result
    if not isinstance(result, Mapping):
        return False
    failed: Any = result.get("failed", 0)
    return "error" in result or (isinstance(failed, int) and failed > 0)


def _schedule_retry(sync_type: str, group_id: int, previous_group_id: int | None) -> None:
    try:
        schedule_sync_retry(
            sync_type=sync_type, group_id=group_id, attempt=0,
            previous_group_id=previous_group_id,
        )
    except Exception as exc:  # a scheduler problem must not reach the application either
        sentry_sdk.capture_exception(exc)
        log.error("retry_not_scheduled", sync_type=sync_type, group_id=group_id,
                  error=f"{type(exc).__name__}: {exc}"[:500])
