"""The Calendar incremental sync runs in the background lane and never holds up
interactive syncs, even when it meets a rate limit."""

from __future__ import annotations

from sqlalchemy import select

from core.db.models import Rsvp
from core.engine.loops.calendar_changes import follow_calendars
from core.group_joining import sync_after_group_change
from core.syncers.calendar_plan import event_id_for
from tests.e2e.conftest import System
from tests.world import SCALE

LIST = "GET /calendars/{calendar_id}/events"
INSERT = "POST /calendars/{calendar_id}/events"
PAUSE = 300.0  # nominal retry_after of the background 429; scaled by the sandbox


async def test_the_incremental_sync_imports_answers_from_the_calendar(system: System) -> None:
    world = system.world
    group = await world.add_group(meetings=1)
    ann = await world.add_user()
    await world.join(ann, group)
    await sync_after_group_change(group.id)
    (event,) = world.sandbox.calendar.events(group.calendar_id)  # type: ignore[arg-type]
    world.sandbox.calendar.set_attendee_response(
        group.calendar_id, event["id"], ann.email, "declined"
    )

    listed = await follow_calendars(system.runtime)

    assert listed == 1
    async with world.sessions() as session:
        (rsvp,) = (await session.execute(select(Rsvp))).scalars().all()
    assert (rsvp.user_id, rsvp.response) == (ann.id, "declined")
    assert event["id"] == event_id_for(rsvp.meeting_id)


async def test_a_background_rate_limit_does_not_delay_an_interactive_sync(system: System) -> None:
    world = system.world
    busy, other = await world.add_group(meetings=1), await world.add_group(meetings=1)
    await world.join(await world.add_user(), busy)
    await sync_after_group_change(busy.id)
    world.sandbox.calendar.inject("429", count=1, retry_after=PAUSE, route=LIST)

    await follow_calendars(system.runtime)  # meets the 429: the background lane pauses
    await world.join(await world.add_user(), other)
    await sync_after_group_change(other.id)

    log = world.sandbox.calendar.request_log
    limited = next(r for r in log if r.route == LIST and r.status == 429)
    insert = next(r for r in log if r.route == INSERT and r.time > limited.time)
    assert insert.status == 200
    assert insert.time - limited.time < PAUSE * SCALE  # it went while the background waited
    assert other.calendar_id is not None
    assert len(world.sandbox.calendar.events(other.calendar_id)) == 1
