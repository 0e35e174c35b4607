"""Calendar push notifications: ``events.watch`` channels and the POSTs Google sends.

As the discovery document (``calendar.events.watch``, ``calendar.channels.stop``, the
``Channel`` schema) and Google's push guide describe them:

- ``POST calendars/{id}/events/watch`` with ``{id, type: "web_hook"|"webhook", address,
  token?, params: {ttl?}}`` answers ``{kind: "api#channel", id, resourceId, resourceUri,
  token?, expiration}`` (``expiration``: epoch milliseconds as a string). ``id`` is
  required, at most 64 characters of ``[A-Za-z0-9-_+/=]`` and unique among live
  channels (400 ``channelIdNotUnique``); ``address`` must be https (the sandbox also
  takes http for loopback hosts, so tests can receive them). ``params.ttl`` is seconds,
  nominal (scaled by the sandbox clock), default 3600, capped at 604800 (a week).
- Right after the watch a ``sync`` message (number 1), then one ``exists`` message per
  change to the calendar's events (numbers counting up per channel). Each is a POST with
  no body and the headers ``X-Goog-Channel-ID``, ``X-Goog-Channel-Token`` (only when a
  token was given), ``X-Goog-Channel-Expiration`` (RFC 1123), ``X-Goog-Resource-ID``,
  ``X-Goog-Resource-URI``, ``X-Goog-Resource-State`` and ``X-Goog-Message-Number``.
- An expired channel sends nothing and is forgotten. ``POST channels/stop`` with
  ``{id, resourceId}`` ends a channel (204); an unknown pair answers 404 ``notFound``.

Not emulated: Google's retries of a failed delivery (each outcome is recorded in
``deliveries`` instead), notifications still arriving after a stop, domain
verification of the address, and ``not_exists`` (the watched resource deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import re
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from core.sandbox.calendar_errors import CalendarError, bad_request

DEFAULT_TTL = 3600.0
MAX_TTL = 604_800.0
CHANNEL_ID = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")
WEB_HOOK = frozenset({"web_hook", "webhook"})


@dataclass
class PushChannel:
    id: str
    calendar_id: str
    resource_id: str
    address: str
    token: str | None
    expiration_ms: int  # epoch milliseconds (wall clock)
    project: str
    number: int = 0  # the last message number sent
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def resource_uri(self) -> str:
        quoted = urllib.parse.quote(self.calendar_id, safe="")
        return f"https://www.googleapis.com/calendar/v3/calendars/{quoted}/events?alt=json"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "api#channel", "id": self.id,
                                "resourceId": self.resource_id,
                                "resourceUri": self.resource_uri(),
                                "expiration": str(self.expiration_ms)}
        if self.token is not None:
            body["token"] = self.token
        return body


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_address(address: Any) -> str:
    if not isinstance(address, str) or not address:
        raise bad_request("required", "Required")
    split = urllib.parse.urlsplit(address)
    if split.scheme == "https" or (split.scheme == "http" and _is_loopback(split.hostname)):
        return address
    raise bad_request("push.webhookUrlNotHttps", "WebHook callback must be HTTPS: " + address)


def _ttl(body: dict[str, Any]) -> float:
    params = body.get("params") or {}
    raw = params.get("ttl") if isinstance(params, dict) else None
    if raw is None:
        return DEFAULT_TTL
    try:
        ttl = float(raw)
    except (TypeError, ValueError):
        raise bad_request("invalid", f"Invalid ttl value: {raw}") from None
    if ttl <= 0:
        raise bad_request("invalid", f"Invalid ttl value: {raw}")
    return min(ttl, MAX_TTL)


class PushChannels:
    """Live watch channels per calendar, and the notification POSTs they cause."""

    def __init__(self, wall: Callable[[], float], scaled: Callable[[float], float],
                 now: Callable[[], float]) -> None:
        self._wall = wall  # epoch seconds
        self._now = now  # monotonic seconds, as the request log's times
        self._scaled = scaled  # nominal seconds -> real seconds
        self.channels: dict[str, PushChannel] = {}
        self._resource_ids: dict[str, str] = {}  # calendar id -> its stable resourceId
        self.deliveries: list[dict[str, Any]] = []  # every POST tried, in order
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self.stopped: list[str] = []  # channel ids ended by channels.stop

    # ---- the API -----------------------------------------------------------------------------
    def watch(self, calendar_id: str, body: dict[str, Any], project: str) -> dict[str, Any]:
        self.expire()
        channel_id = body.get("id")
        if not isinstance(channel_id, str) or not channel_id:
            raise bad_request("required", "Required")
        if not CHANNEL_ID.match(channel_id):
            raise bad_request("invalid", f"Invalid channel id: {channel_id}")
        if body.get("type") not in WEB_HOOK:
            raise bad_request("invalid", f"Invalid value for: type: {body.get('type')}")
        address = _check_address(body.get("address"))
        if channel_id in self.channels:
            raise bad_request("channelIdNotUnique", "Channel id not unique")
        token = body.get("token")
        expires = self._wall() + self._scaled(_ttl(body))
        resource_id = self._resource_ids.setdefault(calendar_id, secrets.token_urlsafe(18))
        channel = PushChannel(channel_id, calendar_id, resource_id, address,
                              None if token is None else str(token),
                              int(expires * 1000), project)
        self.channels[channel_id] = channel
        self._send(channel, "sync")
        return channel.to_json()

    def stop(self, body: dict[str, Any], project: str) -> None:
        self.expire()  # an expired channel is gone already: 404, as Google answers
        channel = self.channels.get(str(body.get("id")))
        if (channel is None or channel.resource_id != body.get("resourceId")
                or channel.project != project):
            raise CalendarError(404, "notFound",
                                f"Channel '{body.get('id')}' not found for project '{project}'")
        del self.channels[channel.id]
        self.stopped.append(channel.id)

    def changed(self, calendar_id: str) -> None:
        """A change to the calendar's events: every live channel on it is told."""
        self.expire()
        for channel in list(self.channels.values()):
            if channel.calendar_id == calendar_id:
                self._send(channel, "exists")

    def expire(self) -> list[str]:
        """Forget channels past their expiration (they send nothing more)."""
        now_ms = self._wall() * 1000
        gone = [c.id for c in self.channels.values() if c.expiration_ms <= now_ms]
        for channel_id in gone:
            del self.channels[channel_id]
        return gone

    def live(self) -> list[dict[str, Any]]:
        self.expire()
        return [{**c.to_json(), "calendar_id": c.calendar_id, "address": c.address,
                 "messages": c.number} for c in self.channels.values()]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ---- delivery ----------------------------------------------------------------------------
    def _send(self, channel: PushChannel, state: str) -> None:
        channel.number += 1  # numbered when the change happens, sent in that order
        task = asyncio.get_running_loop().create_task(
            self._deliver(channel, state, channel.number))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, channel: PushChannel, state: str, number: int) -> None:
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": email.utils.formatdate(
                channel.expiration_ms / 1000, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri(),
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(number),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        record: dict[str, Any] = {"channel_id": channel.id, "calendar_id": channel.calendar_id,
                                  "state": state, "number": number, "status": None,
                                  "time": self._now()}
        async with channel.lock:
            if self._http is None:
                self._http = aiohttp.ClientSession(
                    # The floor is real seconds: a receiver on a loaded test machine can
                    # take longer than a scaled second to answer, and a notification lost
                    # to our own impatience is one Google would have delivered.
                    timeout=aiohttp.ClientTimeout(total=max(self._scaled(10.0), 5.0)))
            try:
                async with self._http.post(channel.address, data=b"",
                                           headers=headers) as response:
                    record["status"] = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                record["error"] = type(exc).__name__
            record["answered"] = self._now()
        self.deliveries.append(record)
