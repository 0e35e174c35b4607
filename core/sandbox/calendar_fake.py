"""The fake Google Calendar v3 server: auth, quotas, faults and logging around the store."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from core.sandbox import batch
from core.sandbox.calendar_errors import (
    ENVELOPES,
    CalendarError,
    auth_error,
    backend_error,
    bad_request,
    forbidden_for_service_accounts,
    not_found,
    quota_exceeded,
    rate_limited,
    required_access_level,
)
from core.sandbox.calendar_push import PushChannels
from core.sandbox.calendar_store import CalendarStore
from core.sandbox.clock import Clock
from core.sandbox.faults import Fault, first
from core.sandbox.oauth import REFRESH_GRANT, OAuthError, Principal, TokenRegistry
from core.sandbox.options import CalendarLimits
from core.sandbox.ratelimit import SlidingWindow
from core.sandbox.reqlog import RequestRecord
from core.sandbox.routing import RouteTable
from core.sandbox.service_base import FakeService

API_PREFIX = "/calendar/v3"
BATCH_PATH = "/batch/calendar/v3"
TOKEN_PATH = "/token"
SEND_UPDATES = frozenset({"all", "externalOnly", "none"})
EVENT = "/calendars/{calendar_id}/events/{event_id}"
WRITES = frozenset({"insert", "update", "patch", "delete"})
ROLES = frozenset({"owner", "writer", "reader", "none"})
ROUTES = RouteTable([
    ("POST", "/channels/stop", "stop_channel"),
    ("POST", "/calendars/{calendar_id}/events/watch", "watch"),
    ("GET", "/calendars/{calendar_id}", "get_calendar"),
    ("POST", "/calendars/{calendar_id}/events", "insert"),
    ("GET", "/calendars/{calendar_id}/events", "list"),
    ("GET", EVENT, "get"),
    ("PUT", EVENT, "update"),
    ("PATCH", EVENT, "patch"),
    ("DELETE", EVENT, "delete"),
])


@dataclass
class CalRequest:
    method: str
    path: str  # below /calendar/v3, percent-decoded
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    batch: bool = False


@dataclass
class CalResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class CalendarFake(FakeService):
    name = "calendar"

    def __init__(self, clock: Clock, limits: CalendarLimits | None = None, seed: int = 0) -> None:
        super().__init__(clock, seed)
        self.limits = limits or CalendarLimits()
        self.store = CalendarStore()
        self.tokens = TokenRegistry()
        self.over_quota_status = self.limits.over_quota_status
        self.quota_envelope = self.limits.quota_envelope
        # calendar id -> {user (None: anyone else): role}; a calendar absent here is
        # shared with everyone as owner, which is what most tests want.
        self.acl: dict[str, dict[str | None, str]] = {}
        self._project_windows: dict[str, SlidingWindow] = {}
        self._user_windows: dict[str, SlidingWindow] = {}
        self.push = PushChannels(clock.wall, clock.scaled, clock.now)
        self.store.observers.append(self.push.changed)

    # ---- control: state ---------------------------------------------------------------------
    @property
    def static_token(self) -> str:
        """A bearer token valid until revoked, for ``google.oauth2.credentials.Credentials``."""
        return self.tokens.static_token

    def issue_token(self, user: str, project: str = "sandbox-project") -> str:
        return self.tokens.issue(user, project)

    def add_calendar(self, calendar_id: str) -> None:
        self.store.add_calendar(calendar_id)

    def delete_calendar(self, calendar_id: str) -> None:
        """A person deleted the calendar: every request on it answers 404 notFound, as
        Google does (the same answer as a calendar not shared with the caller)."""
        self.store.delete_calendar(calendar_id)

    def events(self, calendar_id: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return self.store.events(calendar_id, include_deleted)

    def get_event(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        return self.store.get(calendar_id, event_id)

    def set_attendee_response(self, calendar_id: str, event_id: str, email: str,
                              response: str) -> None:
        self.store.set_attendee_response(calendar_id, event_id, email, response)

    def edit_event_as_person(self, calendar_id: str, event_id: str,
                             changes: dict[str, Any]) -> dict[str, Any]:
        return self.store.edit_as_person(calendar_id, event_id, changes)

    def delete_event_as_person(self, calendar_id: str, event_id: str) -> None:
        self.store.delete(calendar_id, event_id, None)

    def revoke_sync_tokens(self) -> None:
        self.store.revoke_sync_tokens()

    def set_quota_envelope(self, envelope: str) -> None:
        """How quota refusals are worded: "errors" (classic ``errors[].reason``),
        "details" (``status`` + ``details[]`` Help and ErrorInfo only) or "both"."""
        if envelope not in ENVELOPES:
            raise ValueError(f"envelope must be one of {sorted(ENVELOPES)}")
        self.quota_envelope = envelope

    def share_calendar(self, calendar_id: str, role: str, user: str | None = None) -> None:
        """The calendar's ACL for ``user`` (None: everyone else): "owner", "writer",
        "reader" (writes get 403 requiredAccessLevel) or "none" (not shared: 404)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}")
        self.acl.setdefault(calendar_id, {})[user] = role

    def revoke_refresh_tokens(self) -> None:
        self.tokens.revoke_refresh_tokens()

    # ---- control: push channels (calendar_push) ---------------------------------------------
    def push_channels(self) -> list[dict[str, Any]]:
        """Live watch channels: the watch answer plus ``calendar_id``, ``address`` and
        ``messages`` (notifications numbered so far)."""
        return self.push.live()

    def push_deliveries(self) -> list[dict[str, Any]]:
        """Every notification POST tried: ``channel_id``, ``calendar_id``, ``state``,
        ``number``, the receiver's ``status`` (or ``error``), ``time`` (when it was sent,
        monotonic like the request log) and ``answered``."""
        return list(self.push.deliveries)

    def stopped_push_channels(self) -> list[str]:
        """Channel ids ended by channels.stop, in order."""
        return list(self.push.stopped)

    def set_over_quota_status(self, status: int) -> None:
        if status not in (403, 429):
            raise ValueError("over-quota status must be 403 or 429")
        self.over_quota_status = status

    # ---- control: quota readers ---------------------------------------------------------------
    def project_units(self, project: str = "sandbox-project") -> int:
        window = self._project_windows.get(project)
        return 0 if window is None else window.used(self.clock.now())

    def user_units(self, user: str) -> int:
        window = self._user_windows.get(user)
        return 0 if window is None else window.used(self.clock.now())

    def quota(self) -> dict[str, dict[str, int]]:
        now = self.clock.now()
        return {
            "projects": {k: w.used(now) for k, w in self._project_windows.items()},
            "users": {k: w.used(now) for k, w in self._user_windows.items()},
        }

    # ---- HTTP ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.handle_api)
        app.router.add_post(BATCH_PATH, self.handle_batch)
        app.router.add_post(TOKEN_PATH, self.handle_token)

        async def close_push(_app: web.Application) -> None:
            await self.push.close()

        app.on_cleanup.append(close_push)
        return app

    async def handle_api(self, request: web.Request) -> web.Response:
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        cal_request = CalRequest(
            method=request.method, path=request.path[len(API_PREFIX):], query=query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
        )
        return _to_web(await self.dispatch(cal_request))

    async def handle_batch(self, request: web.Request) -> web.Response:
        record = self._record("POST", BATCH_PATH, f"POST {BATCH_PATH}", None, {})
        error: CalendarError | None
        outer = {k.lower(): v for k, v in request.headers.items()
                 if k.lower() not in ("content-type", "content-length", "host")}
        try:
            parts = batch.parse_batch(request.headers.get("Content-Type", ""),
                                      await request.read())
            if len(parts) > self.limits.max_batch:
                raise bad_request("invalid", f"Batch size is limited to {self.limits.max_batch}.")
        except ValueError as exc:
            parts, error = [], bad_request("invalid", str(exc))
        except CalendarError as exc:
            parts, error = [], exc
        else:
            error = self._outer_fault(record)
        if error is not None:
            return self._finish(record, _to_web(_error(error)))
        answers = []
        for part in parts:
            answer = await self.dispatch(_part_request(part, outer))
            answers.append((part.content_id, answer.status, answer.headers, answer.body))
        content_type, payload = batch.format_batch(answers)
        response = web.Response(status=200, body=payload, headers={"Content-Type": content_type})
        return self._finish(record, response)

    async def handle_token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        record = self._record("POST", TOKEN_PATH, f"POST {TOKEN_PATH}", None, {})
        fired = self.faults.take(record.route)
        record.faults.extend(f.kind for f in fired)
        try:
            if first(fired, "revoked_token"):
                # Google's words for each grant: a refresh token revoked, a key deleted.
                if form.get("grant_type") == REFRESH_GRANT:
                    raise OAuthError("invalid_grant", "Token has been expired or revoked.")
                raise OAuthError("invalid_grant", "Invalid JWT Signature.")
            if first(fired, "5xx"):
                return self._finish(record, _json(500, {"error": "internal_failure"}))
            body = self.tokens.grant(form)
        except OAuthError as exc:
            return self._finish(record, _json(400, exc.body()))
        return self._finish(record, _json(200, body))

    # ---- one API request (direct or from a batch) ------------------------------------------------
    async def dispatch(self, req: CalRequest) -> CalResponse:
        matched = ROUTES.match(req.method, req.path)
        route_key = matched[0].key if matched else f"{req.method} {req.path}"
        body = _parse_json(req.body)
        record = self._record(req.method, req.path, route_key, body, req.query)
        record.batch = req.batch
        try:
            response = await self._serve(req, matched, body, record)
        except CalendarError as exc:
            response = _error(exc)
        record.status = response.status
        self.log.add(record)
        return response

    async def _serve(self, req: CalRequest, matched: Any, body: Any,
                     record: RequestRecord) -> CalResponse:
        fired = self.faults.take(record.route)
        record.faults.extend(f.kind for f in fired)
        latency = first(fired, "latency")
        if latency is not None:
            await asyncio.sleep(self.clock.scaled(latency.latency or 1.0))
        principal = self.tokens.lookup(req.headers.get("authorization"))
        if principal is None or first(fired, "revoked_token"):
            raise auth_error()
        _raise_injected(fired, self.clock, self.quota_envelope)
        if matched is None:
            raise not_found()
        route, params = matched
        self._charge(route.name, req.query, principal, record)
        if body is not None and not isinstance(body, dict):
            raise bad_request("parseError", "Parse Error")
        response = self._call(route.name, params, req, body or {}, principal)
        late = first(fired, "late_answer")
        if late is not None:
            await asyncio.sleep(self.clock.scaled(late.latency or 1.0))
        return response

    def _admitted_calendar(self, name: str, params: dict[str, str], req: CalRequest,
                           body: dict[str, Any], principal: Principal) -> str:
        """The calendar the request is for, once Google would accept the request."""
        send_updates = req.query.get("sendUpdates", [None])[-1]
        if send_updates is not None and send_updates not in SEND_UPDATES:
            raise bad_request("invalid", f"Invalid value for: sendUpdates: {send_updates}")
        calendar_id = params["calendar_id"]
        if calendar_id == "primary":
            calendar_id = principal.user
            self.store.add_calendar(calendar_id)
        self._check_access(name, calendar_id, principal)
        if name in ("insert", "update", "patch") and body.get("attendees") \
                and not principal.may_invite:
            raise forbidden_for_service_accounts()
        return calendar_id

    def _call(self, name: str, params: dict[str, str], req: CalRequest, body: dict[str, Any],
              principal: Principal) -> CalResponse:
        if name == "stop_channel":
            self.push.stop(body, principal.project)
            return CalResponse(204)
        calendar_id = self._admitted_calendar(name, params, req, body, principal)
        event_id = params.get("event_id", "")
        if_match = req.headers.get("if-match")
        store = self.store
        if name == "get_calendar":
            store.calendar(calendar_id)
            return CalResponse(200, {"kind": "calendar#calendar", "etag": '"1"',
                                     "id": calendar_id, "summary": calendar_id,
                                     "timeZone": "UTC"})
        if name == "watch":
            store.calendar(calendar_id)
            return CalResponse(200, self.push.watch(calendar_id, body, principal.project))
        if name == "insert":
            return _event(store.insert(calendar_id, body, principal.user))
        if name == "list":
            return CalResponse(200, store.list_events(
                calendar_id, req.query, self.limits.max_results_default,
                self.limits.max_results_cap))
        if name == "get":
            event = store.get(calendar_id, event_id)
            if req.headers.get("if-none-match") == event["etag"]:
                return CalResponse(304)
            return _event(event)
        if name == "update":
            return _event(store.update(calendar_id, event_id, body, if_match))
        if name == "patch":
            return _event(store.patch(calendar_id, event_id, body, if_match))
        store.delete(calendar_id, event_id, if_match)
        return CalResponse(204)

    def _check_access(self, name: str, calendar_id: str, principal: Principal) -> None:
        rules = self.acl.get(calendar_id)
        if rules is None:
            return
        role = rules.get(principal.user, rules.get(None, "owner"))
        if role == "none":
            raise not_found()  # Google does not say "not shared": the calendar is not there
        if name in WRITES and role not in ("owner", "writer"):
            raise required_access_level()

    def _charge(self, name: str, query: dict[str, list[str]], principal: Principal,
                record: RequestRecord) -> None:
        units = self.limits.patch_units if name == "patch" else 1
        user = query.get("quotaUser", [principal.user])[-1]
        record.user = user
        now = self.clock.now()
        window = self.clock.scaled(self.limits.window)
        project = self._project_windows.setdefault(
            principal.project, SlidingWindow(self.limits.project_per_window, window))
        per_user = self._user_windows.setdefault(
            user, SlidingWindow(self.limits.user_per_window, window))
        status = self.over_quota_status
        envelope = self.quota_envelope
        if project.would_exceed(now, units):
            raise rate_limited(status, "rateLimitExceeded", envelope)
        if per_user.would_exceed(now, units):
            raise rate_limited(status, "userRateLimitExceeded" if status == 403
                               else "rateLimitExceeded", envelope)
        project.add(now, units)
        per_user.add(now, units)
        record.quota_units = units

    # ---- helpers ------------------------------------------------------------------------
    def _record(self, method: str, path: str, route: str, body: Any,
                query: dict[str, list[str]]) -> RequestRecord:
        flat = {k: v[-1] for k, v in query.items() if v}
        return RequestRecord(service=self.name, method=method, path=path, route=route,
                             status=0, time=self.clock.now(), body=body, query=flat)

    def _finish(self, record: RequestRecord, response: web.Response) -> web.Response:
        record.status = response.status
        self.log.add(record)
        return response

    def _outer_fault(self, record: RequestRecord) -> CalendarError | None:
        fired = self.faults.take(record.route, named_only=True)
        record.faults.extend(f.kind for f in fired)
        try:
            _raise_injected(fired, self.clock, self.quota_envelope)
        except CalendarError as exc:
            return exc
        return None


def _raise_injected(fired: list[Fault], clock: Clock, envelope: str = "errors") -> None:
    if first(fired, "quota_exceeded"):
        raise quota_exceeded()
    limited = first(fired, "429")
    if limited is not None:
        error = rate_limited(limited.status or 429, envelope=envelope)
        if limited.retry_after is not None:
            error.extra["retry_after"] = str(clock.scaled(limited.retry_after))
        raise error
    failed = first(fired, "5xx")
    if failed is not None:
        raise backend_error(failed.status or 500)


def _part_request(part: batch.BatchPart, outer: dict[str, str]) -> CalRequest:
    split = urllib.parse.urlsplit(part.target)
    path = urllib.parse.unquote(split.path)
    path = path[len(API_PREFIX):] if path.startswith(API_PREFIX) else path
    return CalRequest(
        method=part.method, path=path, query=urllib.parse.parse_qs(split.query),
        headers={**outer, **part.headers}, body=part.body, batch=True,
    )


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _event(event: dict[str, Any]) -> CalResponse:
    return CalResponse(200, event, {"ETag": event["etag"]})


def _error(exc: CalendarError) -> CalResponse:
    headers = {}
    if "retry_after" in exc.extra:
        headers["Retry-After"] = exc.extra.pop("retry_after")
    return CalResponse(exc.status, exc.body(), headers)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(),
                        headers={**(headers or {}),
                                 "Content-Type": "application/json; charset=UTF-8"})


def _to_web(response: CalResponse) -> web.Response:
    if response.body is None:
        return web.Response(status=response.status, headers=response.headers)
    return _json(response.status, response.body, response.headers)
