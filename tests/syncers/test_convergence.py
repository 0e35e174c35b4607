"""Each syncer converges from any start, and a converged group costs no external call."""

from __future__ import annotations

from sqlalchemy import select

from core.db.models import Group, Rsvp, SyncType
from core.syncers.calendar_plan import event_id_for
from core.syncers.types import names
from tests.world import World


async def test_discord_converges_from_empty_and_then_only_reads(world: World) -> None:
    group = await world.add_group()
    ann, bob, noid = (
        await world.add_user(),
        await world.add_user(),
        await world.add_user(discord=False),
    )
    for user in (ann, bob, noid):
        await world.join(user, group)

    result = await world.sync(SyncType.DISCORD, group.id)

    members = {ann.discord_user_id, bob.discord_user_id}
    assert world.member_overwrites(group.discord_text_channel_id) == members
    assert world.member_overwrites(group.discord_voice_channel_id) == members
    assert result["granted"] == 4
    assert result["skipped"] == 1
    assert result["failed"] == 0
    world.clear_calls()
    again = await world.sync(SyncType.DISCORD, group.id)
    assert world.calls() == {"GET /channels/{channel_id}": 2}  # one read per channel
    assert again["unchanged"] == 4


async def test_discord_converges_from_a_partial_start(world: World) -> None:
    group = await world.add_group()
    ann = await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.DISCORD, group.id)
    # The voice overwrite was never applied (an old crash, or a moderator removed it):
    assert group.discord_voice_channel_id is not None
    world.sandbox.discord.state.delete_overwrite(group.discord_voice_channel_id,
                                                 ann.discord_user_id)

    result = await world.sync(SyncType.DISCORD, group.id)

    assert result["failed"] == 0
    assert world.member_overwrites(group.discord_voice_channel_id) == {ann.discord_user_id}
    assert len(await world.grants(group.id)) == 2


async def test_discord_revokes_stale_grants_of_people_who_left(world: World) -> None:
    group = await world.add_group()
    ann, bob = await world.add_user(), await world.add_user()
    await world.join(ann, group)
    await world.join(bob, group)
    await world.sync(SyncType.DISCORD, group.id)
    await world.leave(bob)

    result = await world.sync(SyncType.DISCORD, group.id)

    assert result["revoked"] == 2
    assert world.member_overwrites(group.discord_text_channel_id) == {ann.discord_user_id}
    assert {g[2] for g in await world.grants(group.id)} == {ann.discord_user_id}


async def test_discord_never_touches_overwrites_made_by_people(world: World) -> None:
    group = await world.add_group()
    ann, bob = await world.add_user(), await world.add_user()
    text = group.discord_text_channel_id
    assert text is not None
    world.sandbox.discord.set_foreign_overwrite(text, "777000000000000001", 0, allow=1024)
    world.sandbox.discord.set_foreign_overwrite(text, bob.discord_user_id, 1, deny=2048)
    await world.join(ann, group)
    await world.join(bob, group)

    result = await world.sync(SyncType.DISCORD, group.id)
    await world.leave(ann)
    await world.leave(bob)
    await world.sync(SyncType.DISCORD, group.id)

    overwrites = world.sandbox.discord.overwrites(text)
    assert result["foreign"] == 1
    assert int(overwrites["777000000000000001"]["allow"]) == 1024
    assert int(overwrites[bob.discord_user_id]["deny"]) == 2048  # the person's overwrite stays
    assert ann.discord_user_id not in overwrites


async def test_discord_role_is_granted_and_revoked(world: World) -> None:
    group = await world.add_group(role=True)
    ann = await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.DISCORD, group.id)
    assert group.discord_role_id in world.sandbox.discord.member_roles(
        group.discord_guild_id, ann.discord_user_id
    )

    await world.leave(ann)
    await world.sync(SyncType.DISCORD, group.id)

    assert group.discord_role_id not in world.sandbox.discord.member_roles(
        group.discord_guild_id, ann.discord_user_id
    )


async def test_calendar_converges_and_a_second_run_only_reads(world: World) -> None:
    group = await world.add_group(meetings=2)
    ann, bob = await world.add_user(), await world.add_user()
    await world.join(ann, group)
    await world.join(bob, group)

    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["created"] == 2
    assert set(world.attendees(group).values()) == {frozenset({ann.email, bob.email})}
    world.clear_calls()
    again = await world.sync(SyncType.CALENDAR, group.id)
    assert world.calls() == {"GET /calendars/{calendar_id}/events": 1}  # one list per group
    assert again["unchanged"] == 2


async def test_calendar_update_uses_if_match_and_one_quota_unit(world: World) -> None:
    group = await world.add_group(meetings=1)
    ann, bob = await world.add_user(), await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.CALENDAR, group.id)
    await world.join(bob, group)
    world.clear_calls()

    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["updated"] == 1
    put = "PUT /calendars/{calendar_id}/events/{event_id}"
    assert world.calls() == {"GET /calendars/{calendar_id}/events": 1, put: 1}
    assert sum(r.quota_units for r in world.sandbox.calendar.request_log if r.route == put) == 1
    assert list(world.attendees(group).values()) == [{ann.email, bob.email}]


async def test_calendar_retried_insert_makes_no_duplicate(world: World) -> None:
    group = await world.add_group(meetings=1)
    ann = await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.CALENDAR, group.id)
    # Forget the record, as if the process died after the insert but before recording it.
    async with world.sessions() as session, session.begin():
        for record in await world.event_records(group.id):
            await session.delete(await session.merge(record))

    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["failed"] == 0
    assert group.calendar_id is not None
    assert len(world.sandbox.calendar.events(group.calendar_id)) == 1


async def test_calendar_reapplies_after_a_person_edited_the_event(world: World) -> None:
    group = await world.add_group(meetings=1)
    ann, bob = await world.add_user(), await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.CALENDAR, group.id)
    assert group.calendar_id is not None
    world.sandbox.calendar.edit_event_as_person(
        group.calendar_id, event_id_for(_first_meeting_id(world, group)), {"summary": "edited"}
    )
    await world.join(bob, group)

    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["updated"] == 1  # the live event was read: its ETag is current
    assert list(world.attendees(group).values()) == [{ann.email, bob.email}]


async def test_deleted_group_converges_to_empty_everywhere(world: World) -> None:
    group = await world.add_group(meetings=1)
    ann = await world.add_user()
    await world.join(ann, group)
    await world.sync_all(group.id)
    async with world.sessions() as session, session.begin():
        await session.delete(await session.get(Group, group.id))

    results = {t: await world.sync(t, group.id) for t in names()}

    assert all(r["failed"] == 0 for r in results.values())
    assert world.member_overwrites(group.discord_text_channel_id) == set()
    assert group.calendar_id is not None
    assert world.sandbox.calendar.events(group.calendar_id) == []  # cancelled
    assert await world.grants(group.id) == set()


async def test_archived_group_converges_to_empty(world: World) -> None:
    group = await world.add_group(meetings=1)
    ann = await world.add_user()
    await world.join(ann, group)
    await world.sync_all(group.id)
    async with world.sessions() as session, session.begin():
        (await session.get(Group, group.id)).archived = True  # type: ignore[union-attr]

    await world.sync_all(group.id)

    assert world.member_overwrites(group.discord_voice_channel_id) == set()
    async with world.sessions() as session:
        assert (await session.execute(select(Rsvp))).first() is None


async def test_rsvps_rows_follow_members_and_import_answers_in_background(world: World) -> None:
    from core.lanes import Lane

    group = await world.add_group(meetings=2)
    ann, bob = await world.add_user(), await world.add_user()
    await world.join(ann, group)
    await world.join(bob, group)
    await world.sync_all(group.id)
    assert group.calendar_id is not None
    meeting_id = _first_meeting_id(world, group)
    world.sandbox.calendar.set_attendee_response(
        group.calendar_id, event_id_for(meeting_id), ann.email, "accepted"
    )
    await world.leave(bob)
    world.clear_calls()

    interactive = await world.sync(SyncType.RSVPS, group.id)
    assert world.calls() == {}  # membership-driven runs read only the database
    background = await world.sync(SyncType.RSVPS, group.id, Lane.BACKGROUND)

    assert interactive["removed"] == 2
    assert background["imported"] == 1
    async with world.sessions() as session:
        rows = {
            (r.meeting_id, r.user_id): r.response
            for r in (await session.execute(select(Rsvp))).scalars()
        }
    assert rows[(meeting_id, ann.id)] == "accepted"
    assert {user for _, user in rows} == {ann.id}


def _first_meeting_id(world: World, group: Group) -> int:
    assert group.calendar_id is not None
    events = world.sandbox.calendar.events(group.calendar_id)
    return min(int(e["extendedProperties"]["private"]["groupsync_meeting"]) for e in events)


async def test_calendar_follows_a_group_that_moves_to_another_calendar(world: World) -> None:
    group = await world.add_group(meetings=1)
    ann = await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.CALENDAR, group.id)
    world.sandbox.calendar.add_calendar("moved@group.calendar.google.com")
    async with world.sessions() as session, session.begin():
        (await session.get(Group, group.id)).calendar_id = "moved@group.calendar.google.com"  # type: ignore[union-attr]

    result = await world.sync(SyncType.CALENDAR, group.id)
    again = await world.sync(SyncType.CALENDAR, group.id)

    assert (result["cancelled"], result["created"], again["unchanged"]) == (1, 1, 1)
    assert group.calendar_id is not None
    assert world.sandbox.calendar.events(group.calendar_id) == []
    (moved,) = world.sandbox.calendar.events("moved@group.calendar.google.com")
    assert {a["email"] for a in moved["attendees"]} == {ann.email}
