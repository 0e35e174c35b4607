"""What the fake Google Calendar holds: calendars and their events, with v3 semantics.

Raises ``CalendarError``; knows nothing about HTTP, auth or quotas.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.sandbox.calendar_errors import CalendarError, bad_request, not_found

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
RESPONSES = frozenset({"needsAction", "declined", "tentative", "accepted"})
READ_ONLY = frozenset({
    "kind", "etag", "id", "htmlLink", "created", "updated", "iCalUID", "creator",
    "organizer", "sequence",
})
# Event.status is writable (discovery document): "cancelled" → "confirmed" restores an event.
STATUSES = frozenset({"confirmed", "tentative", "cancelled"})


def rfc3339(epoch: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if epoch is None else epoch, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class StoredEvent:
    data: dict[str, Any]
    seq: int  # change sequence number, for syncToken


class CalendarStore:
    def __init__(self) -> None:
        self.calendars: dict[str, dict[str, StoredEvent]] = {}
        self._etags = itertools.count(int(time.time() * 1_000_000))
        self._seq = itertools.count(1)
        self._sync_epoch = secrets.token_hex(4)
        # Called with the calendar's id after every change to one of its events (push).
        self.observers: list[Callable[[str], None]] = []

    # ---- calendars ------------------------------------------------------------------------
    def add_calendar(self, calendar_id: str) -> None:
        self.calendars.setdefault(calendar_id, {})

    def delete_calendar(self, calendar_id: str) -> None:
        self.calendars.pop(calendar_id, None)

    def calendar(self, calendar_id: str) -> dict[str, StoredEvent]:
        events = self.calendars.get(calendar_id)
        if events is None:
            raise not_found()
        return events

    def stored(self, calendar_id: str, event_id: str) -> StoredEvent:
        stored = self.calendar(calendar_id).get(event_id)
        if stored is None:
            raise not_found()
        return stored

    def revoke_sync_tokens(self) -> None:
        """Every sync token issued so far now answers 410 fullSyncRequired."""
        self._sync_epoch = secrets.token_hex(4)

    # ---- events ------------------------------------------------------------------------------
    def insert(self, calendar_id: str, body: dict[str, Any], organizer: str) -> dict[str, Any]:
        events = self.calendar(calendar_id)
        event_id = body.get("id")
        if event_id is None:
            event_id = base64.b32hexencode(secrets.token_bytes(15)).decode().lower()
        elif not isinstance(event_id, str) or not EVENT_ID.match(event_id):
            raise bad_request("invalid", "Invalid resource id value.")
        if event_id in events:
            raise CalendarError(409, "duplicate", "The requested identifier already exists.")
        _check_times(body)
        now = rfc3339()
        data = {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY}
        data.update(
            kind="calendar#event", id=event_id, status=_status(body, "confirmed"), created=now,
            updated=now,
            iCalUID=body.get("iCalUID") or f"{event_id}@google.com", sequence=0,
            htmlLink=f"https://www.google.com/calendar/event?eid={event_id}",
            creator={"email": organizer}, organizer={"email": calendar_id, "self": True},
        )
        data["attendees"] = _attendees(body.get("attendees"), [])
        if not data["attendees"]:
            del data["attendees"]
        data.setdefault("reminders", {"useDefault": True})
        data.setdefault("eventType", "default")
        return self._save(calendar_id, event_id, data)

    def get(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        return copy.deepcopy(self.stored(calendar_id, event_id).data)

    def update(self, calendar_id: str, event_id: str, body: dict[str, Any],
               if_match: str | None) -> dict[str, Any]:
        stored = self._writable(calendar_id, event_id, if_match)
        _check_times(body)
        old = stored.data
        data = {k: v for k, v in old.items() if k in READ_ONLY}
        data.update({k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY})
        data["status"] = _status(body, old["status"])
        data["attendees"] = _attendees(body.get("attendees"), old.get("attendees", []))
        if not data["attendees"]:
            del data["attendees"]
        return self._modify(calendar_id, event_id, old, data)

    def patch(self, calendar_id: str, event_id: str, body: dict[str, Any],
              if_match: str | None) -> dict[str, Any]:
        stored = self._writable(calendar_id, event_id, if_match)
        return self._modify(calendar_id, event_id, stored.data, merge_patch(stored.data, body))

    def delete(self, calendar_id: str, event_id: str, if_match: str | None) -> None:
        stored = self._writable(calendar_id, event_id, if_match)
        if stored.data["status"] == "cancelled":
            raise CalendarError(410, "deleted", "Resource has been deleted")
        data = copy.deepcopy(stored.data)
        data["status"] = "cancelled"
        data["updated"] = rfc3339()
        self._save(calendar_id, event_id, data)

    def set_attendee_response(self, calendar_id: str, event_id: str, email: str,
                              response: str) -> None:
        if response not in RESPONSES:
            raise ValueError(f"responseStatus must be one of {sorted(RESPONSES)}")
        stored = self.stored(calendar_id, event_id)
        data = copy.deepcopy(stored.data)
        attendee = next((a for a in data.get("attendees", []) if a["email"] == email), None)
        if attendee is None:
            raise KeyError(f"{email} is not an attendee of {event_id}")
        attendee["responseStatus"] = response
        self._save(calendar_id, event_id, data)

    def edit_as_person(self, calendar_id: str, event_id: str,
                       changes: dict[str, Any]) -> dict[str, Any]:
        """A person edits the event in the Calendar UI: patch semantics, new ETag."""
        stored = self.stored(calendar_id, event_id)
        return self._modify(calendar_id, event_id, stored.data,
                            merge_patch(stored.data, changes))

    def events(self, calendar_id: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [copy.deepcopy(s.data) for s in self.calendar(calendar_id).values()
                if include_deleted or s.data["status"] != "cancelled"]

    # ---- list ----------------------------------------------------------------------------------
    def list_events(self, calendar_id: str, query: Mapping[str, Sequence[str]],
             max_default: int, max_cap: int) -> dict[str, Any]:
        events = self.calendar(calendar_id)
        one = {k: v[-1] for k, v in query.items() if v}
        sync_token = one.get("syncToken")
        if sync_token is not None:
            forbidden = {"iCalUID", "orderBy", "privateExtendedProperty", "q", "timeMin",
                         "timeMax", "sharedExtendedProperty", "updatedMin"} & set(one)
            if forbidden:
                raise bad_request("invalid", f"Sync token cannot be used with {sorted(forbidden)}")
            since = self._parse_sync_token(sync_token)
            items = [s for s in events.values() if s.seq > since]
        else:
            show_deleted = one.get("showDeleted") == "true"
            items = [s for s in events.values()
                     if (show_deleted or s.data["status"] != "cancelled")
                     and _matches(s.data, query)]
        max_results = min(int(one.get("maxResults", max_default)), max_cap)
        if max_results < 1:
            raise bad_request("invalid", "Invalid value for maxResults")
        offset = _decode_page_token(one.get("pageToken"))
        page = items[offset:offset + max_results]
        result: dict[str, Any] = {
            "kind": "calendar#events", "etag": f'"{next(self._etags)}"',
            "summary": calendar_id, "updated": rfc3339(), "timeZone": "UTC",
            "accessRole": "owner", "defaultReminders": [],
            "items": [copy.deepcopy(s.data) for s in page],
        }
        if offset + max_results < len(items):
            result["nextPageToken"] = _encode({"o": offset + max_results})
        else:
            last = max((s.seq for s in events.values()), default=0)
            result["nextSyncToken"] = _encode({"s": last, "e": self._sync_epoch})
        return result

    # ---- internals -------------------------------------------------------------------------------
    def _writable(self, calendar_id: str, event_id: str, if_match: str | None) -> StoredEvent:
        stored = self.stored(calendar_id, event_id)
        if if_match is not None and if_match not in ("*", stored.data["etag"]):
            raise CalendarError(412, "conditionNotMet", "Precondition Failed",
                                location="If-Match", locationType="header")
        return stored

    def _modify(self, calendar_id: str, event_id: str, old: dict[str, Any],
                data: dict[str, Any]) -> dict[str, Any]:
        if old.get("start") != data.get("start") or old.get("end") != data.get("end"):
            data["sequence"] = old.get("sequence", 0) + 1
        data["updated"] = rfc3339()
        return self._save(calendar_id, event_id, data)

    def _save(self, calendar_id: str, event_id: str, data: dict[str, Any]) -> dict[str, Any]:
        data["etag"] = f'"{next(self._etags)}"'
        self.calendar(calendar_id)[event_id] = StoredEvent(data, next(self._seq))
        for observer in self.observers:
            observer(calendar_id)
        return copy.deepcopy(data)

    def _parse_sync_token(self, token: str) -> int:
        decoded = _decode(token)
        if not isinstance(decoded, dict) or decoded.get("e") != self._sync_epoch:
            raise CalendarError(410, "fullSyncRequired", "Sync token is no longer valid, "
                                "a full sync is required.")
        return int(decoded.get("s", 0))


def merge_patch(old: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Patch: fields replace, arrays replace whole, extendedProperties maps merge (null deletes)."""
    data = copy.deepcopy(old)
    for key, value in body.items():
        if key in READ_ONLY:
            continue
        if key == "extendedProperties" and isinstance(value, dict):
            props = data.setdefault("extendedProperties", {})
            for scope in ("private", "shared"):
                if isinstance(value.get(scope), dict):
                    merged = {**props.get(scope, {}), **value[scope]}
                    props[scope] = {k: v for k, v in merged.items() if v is not None}
        elif key == "attendees":
            data["attendees"] = _attendees(value, old.get("attendees", []))
        elif key == "status":
            data["status"] = _status(body, old["status"])
        elif value is None:
            data.pop(key, None)
        else:
            data[key] = copy.deepcopy(value)
    _check_times(data)
    return data


def _status(body: dict[str, Any], default: str) -> str:
    value = body.get("status")
    if value is None:
        return default
    if value not in STATUSES:
        raise bad_request("invalid", "Invalid value for: status")
    return str(value)


def _attendees(new: Any, old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalise attendees; a known attendee keeps their answer unless one is given."""
    if not new:
        return []
    previous = {a["email"].lower(): a.get("responseStatus", "needsAction") for a in old}
    result = []
    for attendee in new:
        email = attendee.get("email") if isinstance(attendee, dict) else None
        if not email:
            raise bad_request("required", "Missing attendee email.")
        response = attendee.get("responseStatus") or previous.get(email.lower(), "needsAction")
        if response not in RESPONSES:
            raise bad_request("invalid", "Invalid attendee response status.")
        result.append({**copy.deepcopy(attendee), "responseStatus": response})
    return result


def _check_times(body: dict[str, Any]) -> None:
    start, end = body.get("start"), body.get("end")
    if not isinstance(start, dict) or not (start.get("dateTime") or start.get("date")):
        raise bad_request("required", "Missing start time.")
    if not isinstance(end, dict) or not (end.get("dateTime") or end.get("date")):
        raise bad_request("required", "Missing end time.")
    try:
        begins = dt.datetime.fromisoformat(start.get("dateTime") or start["date"])
        ends = dt.datetime.fromisoformat(end.get("dateTime") or end["date"])
    except ValueError:
        raise bad_request("invalid", "Invalid start or end time.") from None
    if begins.tzinfo is not None and ends.tzinfo is not None and ends < begins:
        raise bad_request("timeRangeEmpty", "The specified time range is empty.")


def _matches(data: dict[str, Any], query: Mapping[str, Sequence[str]]) -> bool:
    props = data.get("extendedProperties", {})
    for scope, param in (("private", "privateExtendedProperty"),
                         ("shared", "sharedExtendedProperty")):
        for constraint in query.get(param, []):
            key, _, value = constraint.partition("=")
            if props.get(scope, {}).get(key) != value:
                return False
    uids = query.get("iCalUID")
    return not uids or data.get("iCalUID") == uids[-1]


def _encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _decode(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        return None


def _decode_page_token(token: str | None) -> int:
    if token is None:
        return 0
    decoded = _decode(token)
    if not isinstance(decoded, dict) or not isinstance(decoded.get("o"), int):
        raise bad_request("invalid", "Invalid page token value.")
    return int(decoded["o"])
