"""A calendar shared read-only, or no longer shared, needs attention with Google's words;
a 404 from an unshared calendar never closes a delivery record as if the event were gone."""

from __future__ import annotations

import pytest

from core.db.models import Group, SyncType
from core.errors import MissingTargetError, NeedsAttentionError
from tests.world import World


async def test_a_read_only_calendar_needs_attention_with_googles_message(world: World) -> None:
    group, _ = await world.group_with_member(meetings=1)
    await world.sync(SyncType.CALENDAR, group.id)
    assert group.calendar_id is not None
    world.sandbox.calendar.share_calendar(group.calendar_id, "reader")
    await world.join(await world.add_user(), group)

    with pytest.raises(NeedsAttentionError) as caught:
        await world.sync(SyncType.CALENDAR, group.id)

    # Google's own words, the calendar and the column to fix
    assert "You need to have writer access to this calendar." in str(caught.value)
    assert caught.value.code == "requiredAccessLevel"
    assert isinstance(caught.value, MissingTargetError)
    assert (caught.value.target_id, caught.value.setting) == (group.calendar_id,
                                                              "groups.calendar_id")
    assert group.calendar_id in str(caught.value)
    assert "groups.calendar_id" in str(caught.value)


async def test_an_unshared_calendar_never_closes_our_records(world: World) -> None:
    group, _ = await world.group_with_member(meetings=1)
    await world.sync(SyncType.CALENDAR, group.id)
    assert group.calendar_id is not None
    world.sandbox.calendar.share_calendar(group.calendar_id, "none")
    async with world.sessions() as session, session.begin():
        await session.delete(await session.get(Group, group.id))

    with pytest.raises(NeedsAttentionError) as caught:
        await world.sync(SyncType.CALENDAR, group.id)

    assert caught.value.status == 404
    assert "not shared" in str(caught.value)
    (record,) = await world.event_records(group.id)
    assert record.cancelled is False  # still ours to cancel once the calendar is back
    world.sandbox.calendar.share_calendar(group.calendar_id, "owner")
    result = await world.sync(SyncType.CALENDAR, group.id)
    assert result["cancelled"] == 1
    assert world.sandbox.calendar.events(group.calendar_id) == []
