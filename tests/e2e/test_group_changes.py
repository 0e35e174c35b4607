"""Membership changes through the public contract, against the sandbox."""

from __future__ import annotations

from sqlalchemy import select

from core.db.models import ReminderDelivery, Rsvp, SyncType
from core.group_joining import switch_group, sync_after_group_change
from tests.e2e.conftest import System

CALENDAR_PUT = "PUT /calendars/{calendar_id}/events/{event_id}"
CALENDAR_LIST = "GET /calendars/{calendar_id}/events"
OVERWRITE = "/channels/{channel_id}/permissions/{target}"


async def test_switch_moves_access_invitations_and_rsvps_with_minimal_calls(
    system: System,
) -> None:
    world = system.world
    a, b = await world.add_group(meetings=1), await world.add_group(meetings=1)
    mover, stays_a, stays_b = await world.add_user(), await world.add_user(), await world.add_user()
    await world.join(mover, a)
    await world.join(stays_a, a)
    await world.join(stays_b, b)
    await sync_after_group_change(a.id)
    await sync_after_group_change(b.id)
    assert await system.all_converged()
    world.clear_calls()

    async with world.sessions() as session, session.begin():
        previous = await switch_group(session, mover.id, b.id)
    await sync_after_group_change(b.id, previous)

    assert world.member_overwrites(a.discord_text_channel_id) == {stays_a.discord_user_id}
    assert world.member_overwrites(b.discord_voice_channel_id) == {
        stays_b.discord_user_id,
        mover.discord_user_id,
    }
    assert list(world.attendees(a).values()) == [{stays_a.email}]
    assert list(world.attendees(b).values()) == [{stays_b.email, mover.email}]
    async with world.sessions() as session:
        rsvps = {(r.meeting_id, r.user_id) for r in (await session.execute(select(Rsvp))).scalars()}
    assert {user for _, user in rsvps} == {mover.id, stays_a.id, stays_b.id}
    assert not any(user == mover.id and meeting in _meetings(world, a) for meeting, user in rsvps)
    # The minimum: read each group's two channels (the live state decides what is missing,
    # and a person's overwrite is never clobbered), revoke two overwrites in A and grant
    # two in B; list each group's events once and make one full update per group's event.
    assert world.calls() == {
        f"DELETE {OVERWRITE}": 2,
        "GET /channels/{channel_id}": 4,
        f"PUT {OVERWRITE}": 2,
        CALENDAR_LIST: 2,
        CALENDAR_PUT: 2,
    }
    writes = [r for r in system.sandbox.calendar.request_log if r.route == CALENDAR_PUT]
    assert sum(r.quota_units for r in writes) == 2
    assert await system.all_converged()


async def test_reminders_follow_the_new_group(system: System) -> None:
    world = system.world
    a, b = await world.add_group(meetings=1), await world.add_group(meetings=1)
    mover = await world.add_user()
    await world.join(mover, a)
    await sync_after_group_change(a.id)
    async with world.sessions() as session, session.begin():
        previous = await switch_group(session, mover.id, b.id)
    await sync_after_group_change(b.id, previous)

    # Both groups keep their meetings' two reminders scheduled: rows, which the daemon's
    # delivery arms and posts (tests/e2e/test_reminders.py), with B's members at post time.
    async with world.sessions() as session:
        rows = (await session.execute(select(ReminderDelivery))).scalars().all()
    assert {(r.group_id, r.offset_minutes, r.status) for r in rows} == {
        (g.id, offset, "scheduled") for g in (a, b) for offset in (1440, 60)
    }
    assert {r.meeting_id for r in rows if r.group_id == b.id} == _meetings(world, b)


def _meetings(world: object, group: object) -> set[int]:
    calendar_id = group.calendar_id  # type: ignore[attr-defined]
    events = world.sandbox.calendar.events(calendar_id)  # type: ignore[attr-defined]
    return {int(e["extendedProperties"]["private"]["groupsync_meeting"]) for e in events}


async def test_a_second_sync_of_a_converged_group_only_reads(system: System) -> None:
    world = system.world
    group = await world.add_group(meetings=2)
    await world.join(await world.add_user(), group)
    await sync_after_group_change(group.id)
    world.clear_calls()

    await sync_after_group_change(group.id)

    assert world.calls() == {"GET /channels/{channel_id}": 2, CALENDAR_LIST: 1}
    assert (await system.state(SyncType.CALENDAR, group.id)).status == "ok"
