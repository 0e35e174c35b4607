"""Membership operations write the outbox in the caller's transaction (DESIGN §2, §3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.db.models import Membership, SyncState, SyncType
from core.db.session import SessionFactory
from core.errors import InvalidArgument, UnknownGroupError
from core.group_joining import join_group, leave_group, request_group_sync, switch_group
from core.syncers.types import names
from tests.factories import make_group, make_user


async def owed(session_factory: SessionFactory) -> dict[tuple[str, int], int]:
    async with session_factory() as session:
        rows = (await session.execute(select(SyncState))).scalars().all()
        return {
            (r.sync_type, r.group_id): r.requested_generation - r.completed_generation for r in rows
        }


async def test_database_refuses_a_second_active_membership(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        user, a, b = await make_user(session), await make_group(session), await make_group(session)
        session.add(Membership(user_id=user.id, group_id=a.id, joined_at=datetime.now(UTC)))
        await session.flush()
        session.add(Membership(user_id=user.id, group_id=b.id, joined_at=datetime.now(UTC)))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_join_marks_every_sync_of_the_group_owed(session_factory: SessionFactory) -> None:
    async with session_factory() as session, session.begin():
        user, group = await make_user(session), await make_group(session)
        await join_group(session, user.id, group.id)

    assert await owed(session_factory) == {(t, group.id): 1 for t in names()}


async def test_rolled_back_join_writes_no_outbox_row(session_factory: SessionFactory) -> None:
    async with session_factory() as session, session.begin():
        user, group = await make_user(session), await make_group(session)

    async with session_factory() as session:
        await join_group(session, user.id, group.id)
        await session.rollback()

    assert await owed(session_factory) == {}
    async with session_factory() as session:
        assert (await session.execute(select(Membership))).first() is None


async def test_switch_marks_old_and_new_group_owed(session_factory: SessionFactory) -> None:
    async with session_factory() as session, session.begin():
        user, a, b = await make_user(session), await make_group(session), await make_group(session)
        await join_group(session, user.id, a.id)
    async with session_factory() as session, session.begin():
        previous = await switch_group(session, user.id, b.id)

    assert previous == a.id
    state = await owed(session_factory)
    assert {key for key, n in state.items() if n > 0} == {
        (t, g) for t in names() for g in (a.id, b.id)
    }
    assert all(state[(t, a.id)] == 2 for t in names())  # the join, then the switch


async def test_leave_ends_membership_and_marks_group_owed(session_factory: SessionFactory) -> None:
    async with session_factory() as session, session.begin():
        user, group = await make_user(session), await make_group(session)
        await join_group(session, user.id, group.id)
    async with session_factory() as session, session.begin():
        assert await leave_group(session, user.id) == group.id
        assert await leave_group(session, user.id) is None

    async with session_factory() as session:
        membership = (await session.execute(select(Membership))).scalar_one()
    assert membership.left_at is not None
    assert (await owed(session_factory))[(SyncType.DISCORD, group.id)] == 2


async def test_requests_coalesce_into_one_row_per_key(session_factory: SessionFactory) -> None:
    for _ in range(5):
        async with session_factory() as session, session.begin():
            await request_group_sync(session, 42)

    assert await owed(session_factory) == {(t, 42): 5 for t in names()}


@pytest.mark.parametrize("bad", [0, -1, "7", 1.5, True, None])
async def test_request_refuses_malformed_group_ids(
    session_factory: SessionFactory, bad: object
) -> None:
    async with session_factory() as session:
        with pytest.raises(InvalidArgument, match="group_id must be a positive int"):
            await request_group_sync(session, bad)  # type: ignore[arg-type]


async def test_join_of_unknown_group_is_refused_and_writes_nothing(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        user = await make_user(session)
        with pytest.raises(UnknownGroupError, match="group 999999 does not exist"):
            await join_group(session, user.id, 999999)
        await session.rollback()
    assert await owed(session_factory) == {}


async def test_an_archived_group_or_an_unknown_user_is_refused_and_writes_nothing(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        user, group = await make_user(session), await make_group(session)
        archived = await make_group(session, archived=True)
        await join_group(session, user.id, group.id)
        await session.commit()
    before = await owed(session_factory)
    async with session_factory() as session:
        with pytest.raises(InvalidArgument, match=f"group {archived.id} is archived"):
            await switch_group(session, user.id, archived.id)
        await session.rollback()
        with pytest.raises(InvalidArgument, match="user 999999 does not exist"):
            await join_group(session, 999999, group.id)
        await session.rollback()
    assert await owed(session_factory) == before


async def test_a_switch_sees_the_rows_of_the_callers_own_transaction(
    session_factory: SessionFactory,
) -> None:
    # The user and both groups are the caller's uncommitted rows: the existence check
    # reads them in the caller's transaction.
    async with session_factory() as session, session.begin():
        user, old = await make_user(session), await make_group(session)
        await join_group(session, user.id, old.id)
        new = await make_group(session)
        assert await switch_group(session, user.id, new.id) == old.id
    async with session_factory() as session:
        active = (await session.scalars(select(Membership.group_id).where(
            Membership.user_id == user.id, Membership.left_at.is_(None)))).all()
    assert active == [new.id]


async def test_a_switch_leaves_the_callers_loaded_membership_as_the_row_now_is(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session, session.begin():
        user, old = await make_user(session), await make_group(session)
        new = await make_group(session)
        held = await join_group(session, user.id, old.id)
        assert await switch_group(session, user.id, new.id) == old.id
        assert held.left_at is not None  # the object the caller holds says it was left
        assert not session.dirty
    async with session_factory() as session:
        rows = (await session.execute(select(Membership.group_id, Membership.left_at.is_(None))
                                      .where(Membership.user_id == user.id)
                                      .order_by(Membership.id))).all()
    assert [tuple(r) for r in rows] == [(old.id, False), (new.id, True)]
