"""Reconciliation against the live services (issue 10): writes whose outcome the client
never learned, and what people hold before or beside us, with the real clients against
the sandbox on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from core.db.models import Group, SyncType
from core.errors import NeedsAttentionError, TransientError
from tests.world import GUILD, World

PUT = "PUT /channels/{channel_id}/permissions/{target}"
DELETE = "DELETE /channels/{channel_id}/permissions/{target}"
CANCEL = "DELETE /calendars/{calendar_id}/events/{event_id}"
LATE = 200  # 2 s at time_scale 0.01: longer than the client waits (its 1 s floor)


async def test_a_revoke_applied_but_answered_late_then_a_rejoin_ends_with_access(
    world: World,
) -> None:
    group = await world.add_group(meetings=0)
    ann = await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.DISCORD, group.id)
    await world.leave(ann)
    world.sandbox.discord.inject("late_answer", latency=LATE, route=DELETE, count=1)
    with pytest.raises(TransientError):
        await world.sync(SyncType.DISCORD, group.id)  # the DELETE took effect; nobody knows
    assert ann.discord_user_id not in world.member_overwrites(group.discord_text_channel_id)

    await world.join(ann, group)
    result = await world.sync(SyncType.DISCORD, group.id)

    assert result["failed"] == 0
    assert world.member_overwrites(group.discord_text_channel_id) == {ann.discord_user_id}
    assert world.member_overwrites(group.discord_voice_channel_id) == {ann.discord_user_id}


async def test_a_grant_applied_but_answered_late_then_a_leave_ends_without_access(
    world: World,
) -> None:
    group = await world.add_group(meetings=0)
    ann = await world.add_user()
    await world.join(ann, group)
    world.sandbox.discord.inject("late_answer", latency=LATE, route=PUT, count=1)
    with pytest.raises(TransientError):
        await world.sync(SyncType.DISCORD, group.id)  # the PUT took effect; nobody knows
    assert world.member_overwrites(group.discord_text_channel_id) == {ann.discord_user_id}

    await world.leave(ann)
    result = await world.sync(SyncType.DISCORD, group.id)

    assert result["failed"] == 0
    assert world.member_overwrites(group.discord_text_channel_id) == set()
    assert world.member_overwrites(group.discord_voice_channel_id) == set()
    assert await world.grants(group.id) == set()


async def test_a_role_held_before_joining_is_kept_when_the_member_leaves(world: World) -> None:
    group = await world.add_group(meetings=0, role=True)
    ann, bob = await world.add_user(), await world.add_user()
    role = group.discord_role_id
    assert role is not None
    world.sandbox.discord.state.guild(GUILD).members[ann.discord_user_id].roles.append(role)
    await world.join(ann, group)
    await world.join(bob, group)
    joined = await world.sync(SyncType.DISCORD, group.id)
    await world.leave(ann)
    await world.leave(bob)

    await world.sync(SyncType.DISCORD, group.id)

    assert joined["foreign"] == 1  # ann's role was hers, not ours
    assert role in world.sandbox.discord.member_roles(GUILD, ann.discord_user_id)
    assert role not in world.sandbox.discord.member_roles(GUILD, bob.discord_user_id)


async def test_a_persons_overwrite_on_a_member_is_never_changed(world: World) -> None:
    group = await world.add_group(meetings=0)
    ann = await world.add_user()
    text = group.discord_text_channel_id
    assert text is not None
    world.sandbox.discord.set_foreign_overwrite(text, ann.discord_user_id, 1, allow=1024,
                                                deny=2048)
    await world.join(ann, group)
    await world.sync(SyncType.DISCORD, group.id)
    await world.leave(ann)
    await world.sync(SyncType.DISCORD, group.id)

    overwrite = world.sandbox.discord.overwrites(text)[ann.discord_user_id]
    assert (int(overwrite["allow"]), int(overwrite["deny"])) == (1024, 2048)


async def test_a_move_whose_old_calendar_refuses_the_cancel_leaves_it_owed_not_orphaned(
    world: World,
) -> None:
    group = await world.add_group(meetings=1)
    await world.join(await world.add_user(), group)
    await world.sync(SyncType.CALENDAR, group.id)
    old, new = group.calendar_id, "moved@group.calendar.google.com"
    assert old is not None
    world.sandbox.calendar.add_calendar(new)
    async with world.sessions() as session, session.begin():
        (await session.get(Group, group.id)).calendar_id = new  # type: ignore[union-attr]
    refusal = world.sandbox.calendar.inject("5xx", status=403, route=CANCEL)

    with pytest.raises(NeedsAttentionError):
        await world.sync(SyncType.CALENDAR, group.id)
    assert len(world.sandbox.calendar.events(new)) == 1  # the new event is made anyway
    assert len(world.sandbox.calendar.events(old)) == 1  # the old one still stands...
    owed = [r for r in await world.event_records(group.id) if r.calendar_id == old]
    assert [r.cancelled for r in owed] == [False]  # ...and its record says so
    refusal.clear()
    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["cancelled"] == 1
    assert world.sandbox.calendar.events(old) == []
    assert len(world.sandbox.calendar.events(new)) == 1
