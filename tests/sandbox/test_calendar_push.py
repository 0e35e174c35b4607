"""Calendar push in the sandbox: events.watch and channels.stop through the real
google-api-python-client, and the notification POSTs Google's push guide describes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from googleapiclient.errors import HttpError

from core.sandbox import Sandbox
from tests.sandbox.conftest import event_body, run
from tests.waiting import wait_for


class Receiver:
    """A web hook on loopback that keeps every notification's headers and body."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append({"headers": dict(request.headers), "body": await request.read()})
        return web.Response(status=204)


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/push", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/push"
    yield receiver
    await runner.cleanup()


def watch_body(hook: Receiver, channel_id: str = "chan-1", **extra: Any) -> dict[str, Any]:
    return {"id": channel_id, "type": "web_hook", "address": hook.url, "token": "s3cret",
            **extra}


async def test_a_watch_opens_a_channel_and_sends_its_sync_message(
        sb: Sandbox, calendar: Any, hook: Receiver) -> None:
    channel = await run(calendar.events().watch(calendarId="cohort@group.calendar.google.com",
                                                body=watch_body(hook)))
    assert channel["kind"] == "api#channel"
    assert (channel["id"], channel["token"]) == ("chan-1", "s3cret")
    assert channel["resourceId"]
    assert channel["resourceUri"].startswith("https://www.googleapis.com/calendar/v3/calendars/")
    assert int(channel["expiration"]) > 0
    await wait_for(lambda: hook.received, timeout=5, message="the sync message")
    headers = hook.received[0]["headers"]
    assert headers["X-Goog-Resource-State"] == "sync"
    assert headers["X-Goog-Message-Number"] == "1"
    assert headers["X-Goog-Channel-ID"] == "chan-1"
    assert headers["X-Goog-Channel-Token"] == "s3cret"
    assert headers["X-Goog-Resource-ID"] == channel["resourceId"]
    assert headers["X-Goog-Channel-Expiration"].endswith("GMT")
    assert hook.received[0]["body"] == b""


async def test_every_change_is_an_exists_message_numbered_in_order(
        sb: Sandbox, calendar: Any, hook: Receiver) -> None:
    cal_id = "cohort@group.calendar.google.com"
    await run(calendar.events().watch(calendarId=cal_id, body=watch_body(hook)))
    event = await run(calendar.events().insert(calendarId=cal_id, body=event_body()))
    sb.calendar.edit_event_as_person(cal_id, event["id"], {"summary": "moved"})
    sb.calendar.delete_event_as_person(cal_id, event["id"])
    await wait_for(lambda: len(hook.received) == 4, timeout=5, message="sync + 3 changes")
    seen = [(h["headers"]["X-Goog-Resource-State"], h["headers"]["X-Goog-Message-Number"])
            for h in hook.received]
    assert seen == [("sync", "1"), ("exists", "2"), ("exists", "3"), ("exists", "4")]
    assert [d["status"] for d in sb.calendar.push_deliveries()] == [204] * 4


async def test_a_stopped_channel_sends_nothing_more(
        sb: Sandbox, calendar: Any, hook: Receiver) -> None:
    cal_id = "cohort@group.calendar.google.com"
    channel = await run(calendar.events().watch(calendarId=cal_id, body=watch_body(hook)))
    await wait_for(lambda: hook.received, timeout=5, message="the sync message")
    await run(calendar.channels().stop(body={"id": "chan-1",
                                             "resourceId": channel["resourceId"]}))
    await run(calendar.events().insert(calendarId=cal_id, body=event_body()))
    assert sb.calendar.push_channels() == []
    assert sb.calendar.stopped_push_channels() == ["chan-1"]
    with pytest.raises(HttpError) as caught:
        await run(calendar.channels().stop(body={"id": "chan-1",
                                                 "resourceId": channel["resourceId"]}))
    assert caught.value.resp.status == 404
    assert len(hook.received) == 1


async def test_an_expired_channel_sends_nothing(
        sb: Sandbox, calendar: Any, hook: Receiver) -> None:
    cal_id = "cohort@group.calendar.google.com"
    # One nominal second: 10 ms at the sandbox's time scale of 0.01.
    await run(calendar.events().watch(calendarId=cal_id,
                                      body=watch_body(hook, params={"ttl": "1"})))
    await wait_for(lambda: sb.calendar.push_channels() == [], timeout=5, message="expiry")
    await run(calendar.events().insert(calendarId=cal_id, body=event_body()))
    assert all(h["headers"]["X-Goog-Resource-State"] == "sync" for h in hook.received)


@pytest.mark.parametrize(("body", "reason"), [
    ({"address": "http://example.org/push"}, "push.webhookUrlNotHttps"),
    ({"type": "email"}, "invalid"),
    ({"id": "x" * 65}, "invalid"),
    ({"id": None}, "required"),
], ids=["http-address", "type", "long-id", "no-id"])
async def test_a_bad_watch_is_refused(sb: Sandbox, calendar: Any, hook: Receiver,
                                      body: dict[str, Any], reason: str) -> None:
    full = {k: v for k, v in {**watch_body(hook), **body}.items() if v is not None}
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().watch(calendarId="cohort@group.calendar.google.com",
                                          body=full))
    assert caught.value.resp.status == 400
    assert caught.value.error_details[0]["reason"] == reason


async def test_a_channel_id_in_use_is_refused(sb: Sandbox, calendar: Any,
                                              hook: Receiver) -> None:
    cal_id = "cohort@group.calendar.google.com"
    await run(calendar.events().watch(calendarId=cal_id, body=watch_body(hook)))
    with pytest.raises(HttpError) as caught:
        await run(calendar.events().watch(calendarId=cal_id, body=watch_body(hook)))
    assert caught.value.error_details[0]["reason"] == "channelIdNotUnique"
