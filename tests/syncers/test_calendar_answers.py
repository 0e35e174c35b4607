"""People's answers in Google are never overwritten, and become our RSVPs; a cancelled
event carrying our id is restored (Event.status is writable)."""

from __future__ import annotations

from sqlalchemy import select

from core.db.models import Group, Rsvp, SyncType, User
from tests.world import World


def _event(world: World, group: Group) -> dict:
    assert group.calendar_id is not None
    (event,) = world.sandbox.calendar.events(group.calendar_id, include_deleted=True)
    return event


def _answers(event: dict) -> dict[str, str]:
    return {a["email"]: a["responseStatus"] for a in event.get("attendees", [])}


async def _rsvp(world: World, user: User) -> str | None:
    async with world.sessions() as session:
        return await session.scalar(select(Rsvp.response).where(Rsvp.user_id == user.id))


async def test_an_answer_given_in_google_survives_a_join_and_the_following_syncs(
    world: World,
) -> None:
    group = await world.add_group(meetings=1)
    ann, bob = await world.add_user(), await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.CALENDAR, group.id)
    event = _event(world, group)
    assert group.calendar_id is not None
    # Ann accepts in Google Calendar after our last write (her answer changes the ETag,
    # so our next update meets 412 and re-reads).
    world.sandbox.calendar.set_attendee_response(group.calendar_id, event["id"], ann.email,
                                                 "accepted")
    await world.join(bob, group)

    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["updated"] == 1
    assert _answers(_event(world, group)) == {ann.email: "accepted", bob.email: "needsAction"}
    assert await _rsvp(world, ann) == "accepted"
    await world.sync(SyncType.RSVPS, group.id)
    await world.sync(SyncType.CALENDAR, group.id)
    assert _answers(_event(world, group))[ann.email] == "accepted"
    assert await _rsvp(world, ann) == "accepted"


async def test_an_answer_survives_an_update_that_meets_412_after_a_person_edit(
    world: World,
) -> None:
    group = await world.add_group(meetings=1)
    ann, bob = await world.add_user(), await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.RSVPS, group.id)
    await world.sync(SyncType.CALENDAR, group.id)
    assert group.calendar_id is not None
    event_id = _event(world, group)["id"]
    world.sandbox.calendar.set_attendee_response(group.calendar_id, event_id, ann.email,
                                                 "declined")
    world.sandbox.calendar.edit_event_as_person(group.calendar_id, event_id,
                                                {"summary": "edited"})
    await world.join(bob, group)

    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["failed"] == 0
    assert _answers(_event(world, group)) == {ann.email: "declined", bob.email: "needsAction"}
    assert await _rsvp(world, ann) == "declined"  # the row the rsvps sync made, updated


async def test_a_cancelled_event_with_our_id_is_restored(world: World) -> None:
    group = await world.add_group(meetings=1)
    ann = await world.add_user()
    await world.join(ann, group)
    await world.sync(SyncType.CALENDAR, group.id)
    assert group.calendar_id is not None
    event_id = _event(world, group)["id"]
    world.sandbox.calendar.set_attendee_response(group.calendar_id, event_id, ann.email,
                                                 "tentative")
    world.sandbox.calendar.delete_event_as_person(group.calendar_id, event_id)
    # As if our record were lost: the next run finds the cancelled event of ours live.
    async with world.sessions() as session, session.begin():
        for record in await world.event_records(group.id):
            await session.delete(await session.merge(record))

    result = await world.sync(SyncType.CALENDAR, group.id)

    assert result["failed"] == 0
    event = _event(world, group)
    assert event["status"] == "confirmed"
    assert _answers(event) == {ann.email: "tentative"}
    assert len(world.sandbox.calendar.events(group.calendar_id, include_deleted=True)) == 1
