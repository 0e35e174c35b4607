"""Calendar events through the unmodified google-api-python-client."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

from core.sandbox import Sandbox
from tests.sandbox.conftest import CALENDAR, event_body, run


def reason(error: HttpError) -> str:
    return error.error_details[0]["reason"]


async def test_insert_with_client_id_then_get(sb: Sandbox, calendar: Any) -> None:
    created = await run(calendar.events().insert(
        calendarId=CALENDAR, body=event_body("meet1abc", attendees=[{"email": "a@x.org"}]),
        sendUpdates="none"))
    fetched = await run(calendar.events().get(calendarId=CALENDAR, eventId="meet1abc"))
    assert created == fetched
    assert fetched["status"] == "confirmed"
    assert fetched["attendees"] == [{"email": "a@x.org", "responseStatus": "needsAction"}]
    assert {"kind", "etag", "iCalUID", "created", "updated", "sequence", "htmlLink"} <= set(fetched)


async def test_insert_without_id_generates_base32hex_id(calendar: Any) -> None:
    created = await run(calendar.events().insert(calendarId=CALENDAR, body=event_body()))
    assert set(created["id"]) <= set("0123456789abcdefghijklmnopqrstuv")


async def test_duplicate_client_id_is_409_and_no_second_event(sb: Sandbox, calendar: Any) -> None:
    await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("dup00001")))
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("dup00001")),
                  num_retries=3)
    assert caught.value.status_code == 409
    assert reason(caught.value) == "duplicate"
    assert len(sb.calendar.events(CALENDAR)) == 1
    assert sb.calendar.counts()[("POST /calendars/{calendar_id}/events", 409)] == 1


@pytest.mark.parametrize("bad_id", ["abc", "UPPERCASE1", "has-dash-1", "wxyz12345"])
async def test_invalid_client_id_is_400(calendar: Any, bad_id: str) -> None:
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().insert(calendarId=CALENDAR, body=event_body(bad_id)))
    assert caught.value.status_code == 400


async def test_error_body_has_google_shape(calendar: Any) -> None:
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().get(calendarId=CALENDAR, eventId="missing1"))
    assert caught.value.status_code == 404
    assert caught.value.reason == "Not Found"
    assert caught.value.error_details == [
        {"domain": "global", "reason": "notFound", "message": "Not Found"}]


async def test_unknown_calendar_is_404(calendar: Any) -> None:
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().list(calendarId="nobody@example.com"))
    assert caught.value.status_code == 404


async def test_patch_replaces_arrays_and_merges_private_properties(sb: Sandbox,
                                                                   calendar: Any) -> None:
    body = event_body("patch0001", attendees=[{"email": "a@x.org"}, {"email": "b@x.org"}],
                      extendedProperties={"private": {"owner": "groupsync", "group": "7"}})
    await run(calendar.events().insert(calendarId=CALENDAR, body=body))
    sb.calendar.set_attendee_response(CALENDAR, "patch0001", "a@x.org", "accepted")
    patched = await run(calendar.events().patch(
        calendarId=CALENDAR, eventId="patch0001", sendUpdates="all",
        body={"attendees": [{"email": "a@x.org"}, {"email": "c@x.org"}],
              "extendedProperties": {"private": {"group": None, "meeting": "3"}}}))
    assert patched["attendees"] == [{"email": "a@x.org", "responseStatus": "accepted"},
                                    {"email": "c@x.org", "responseStatus": "needsAction"}]
    assert patched["extendedProperties"]["private"] == {"owner": "groupsync", "meeting": "3"}
    assert patched["summary"] == "Week 1"


async def test_update_replaces_the_event(calendar: Any) -> None:
    await run(calendar.events().insert(calendarId=CALENDAR, body=event_body(
        "update001", description="old", extendedProperties={"private": {"owner": "gs"}})))
    updated = await run(calendar.events().update(
        calendarId=CALENDAR, eventId="update001", body=event_body(summary="Week 1 (moved)")))
    assert updated["summary"] == "Week 1 (moved)"
    assert "description" not in updated
    assert "extendedProperties" not in updated


async def test_delete_cancels_then_410_and_get_still_returns(sb: Sandbox, calendar: Any) -> None:
    await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("delete001")))
    await run(calendar.events().delete(calendarId=CALENDAR, eventId="delete001",
                                       sendUpdates="all"))
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().delete(calendarId=CALENDAR, eventId="delete001"))
    assert caught.value.status_code == 410
    assert reason(caught.value) == "deleted"
    got = await run(calendar.events().get(calendarId=CALENDAR, eventId="delete001"))
    assert got["status"] == "cancelled"
    assert sb.calendar.events(CALENDAR) == []


async def test_list_filters_by_private_property_pages_and_shows_deleted(calendar: Any) -> None:
    for n in range(5):
        tag = {"private": {"owner": "groupsync" if n < 4 else "person"}}
        await run(calendar.events().insert(calendarId=CALENDAR, body=event_body(
            f"listed{n:03d}", extendedProperties=tag)))
    await run(calendar.events().delete(calendarId=CALENDAR, eventId="listed000"))
    ids, token = [], None
    while True:
        page = await run(calendar.events().list(
            calendarId=CALENDAR, privateExtendedProperty="owner=groupsync", maxResults=2,
            pageToken=token))
        ids += [e["id"] for e in page["items"]]
        token = page.get("nextPageToken")
        if token is None:
            assert "nextSyncToken" in page
            break
    assert ids == ["listed001", "listed002", "listed003"]
    everything = await run(calendar.events().list(calendarId=CALENDAR, showDeleted=True))
    assert len(everything["items"]) == 5


async def test_if_match_with_stale_etag_is_412(sb: Sandbox, calendar: Any) -> None:
    created = await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("etag0001")))
    sb.calendar.edit_event_as_person(CALENDAR, "etag0001", {"summary": "renamed by a person"})
    request = calendar.events().patch(calendarId=CALENDAR, eventId="etag0001",
                                      body={"summary": "groupsync"})
    request.headers["If-Match"] = created["etag"]
    with pytest.raises(HttpError) as caught:
        await run(request)
    assert caught.value.status_code == 412
    assert reason(caught.value) == "conditionNotMet"
    assert sb.calendar.get_event(CALENDAR, "etag0001")["summary"] == "renamed by a person"


async def test_if_match_with_current_etag_succeeds(calendar: Any) -> None:
    created = await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("etag0002")))
    request = calendar.events().patch(calendarId=CALENDAR, eventId="etag0002",
                                      body={"summary": "ok"})
    request.headers["If-Match"] = created["etag"]
    patched = await run(request)
    assert patched["etag"] != created["etag"]


async def test_send_updates_recorded_and_validated(sb: Sandbox, calendar: Any) -> None:
    await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("notice001"),
                                       sendUpdates="all"))
    assert sb.calendar.request_log[-1].query["sendUpdates"] == "all"
    request = calendar.events().insert(calendarId=CALENDAR, body=event_body("notice002"))
    request.uri += "&sendUpdates=sometimes"
    with pytest.raises(HttpError) as caught:
        await run(request)
    assert caught.value.status_code == 400


async def test_attendee_response_flip_is_visible_to_client(sb: Sandbox, calendar: Any) -> None:
    await run(calendar.events().insert(calendarId=CALENDAR, body=event_body(
        "rsvp00001", attendees=[{"email": "a@x.org"}])))
    sb.calendar.set_attendee_response(CALENDAR, "rsvp00001", "a@x.org", "declined")
    got = await run(calendar.events().get(calendarId=CALENDAR, eventId="rsvp00001"))
    assert got["attendees"][0]["responseStatus"] == "declined"


async def test_sync_token_returns_changes_and_410_when_revoked(sb: Sandbox, calendar: Any) -> None:
    await run(calendar.events().insert(calendarId=CALENDAR, body=event_body("change001")))
    first = await run(calendar.events().list(calendarId=CALENDAR))
    await run(calendar.events().delete(calendarId=CALENDAR, eventId="change001"))
    changes = await run(calendar.events().list(calendarId=CALENDAR,
                                               syncToken=first["nextSyncToken"]))
    assert [(e["id"], e["status"]) for e in changes["items"]] == [("change001", "cancelled")]
    sb.calendar.revoke_sync_tokens()
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().list(calendarId=CALENDAR, syncToken=first["nextSyncToken"]))
    assert caught.value.status_code == 410
    assert reason(caught.value) == "fullSyncRequired"
