"""The control API over HTTP: ``/_control/...`` on every port of the sandbox.

``GET /_control/urls`` returns the sandbox's URLs. ``POST /_control/{service}/{method}``
with a JSON object of keyword arguments calls that control method of the
``discord`` or ``calendar`` fake and returns its result as JSON (``GET`` takes
the arguments from the query string). Each port serves both services, so the
other port (or the dedicated control port) still works during an outage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from core.sandbox.calendar_errors import CalendarError
from core.sandbox.discord_errors import DiscordError
from core.sandbox.faults import FaultHandle
from core.sandbox.reqlog import RequestRecord
from core.sandbox.service_base import FakeService

PREFIX = "/_control"
COMMON = frozenset({
    "request_log", "counts", "clear_log", "inject", "clear_fault", "clear_faults",
    "active_faults",
})
ALLOWED = {
    "discord": COMMON | {
        "add_guild", "add_role", "add_channel", "delete_channel", "add_user", "add_member",
        "remove_member", "set_foreign_overwrite", "overwrites", "member_roles", "messages",
        "dm_messages", "invalid_requests", "pings", "set_bot_permissions",
        "drop_gateway_connections", "invalidate_gateway_sessions", "request_gateway_reconnect",
        "gateway_stats", "set_session_start_limit", "allow_privileged_intents",
    },
    "calendar": COMMON | {
        "add_calendar", "delete_calendar", "events", "get_event", "set_attendee_response",
        "edit_event_as_person",
        "delete_event_as_person", "revoke_sync_tokens", "set_over_quota_status",
        "project_units", "user_units", "quota", "issue_token", "set_quota_envelope",
        "share_calendar", "revoke_refresh_tokens", "push_channels", "push_deliveries",
        "stopped_push_channels",
    },
}


def add_control_routes(app: web.Application, services: Mapping[str, FakeService],
                       urls: Callable[[], dict[str, Any]]) -> None:
    async def get_urls(_: web.Request) -> web.Response:
        return web.json_response(urls())

    async def call(request: web.Request) -> web.Response:
        service_name = request.match_info["service"]
        method = request.match_info["method"]
        service = services.get(service_name)
        if service is None or method not in ALLOWED.get(service_name, ()):
            return web.json_response({"error": f"unknown control {service_name}/{method}"},
                                     status=404)
        if request.method == "GET":
            kwargs: dict[str, Any] = dict(request.query)
        else:
            raw = await request.read()
            kwargs = json.loads(raw) if raw else {}
        try:
            target = getattr(service, method)
            result = target(**kwargs) if callable(target) else target
        except (DiscordError, CalendarError) as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": repr(exc)}, status=400)
        return web.json_response({"result": to_json(result)})

    app.router.add_get(PREFIX + "/urls", get_urls)
    app.router.add_route("GET", PREFIX + "/{service}/{method}", call)
    app.router.add_route("POST", PREFIX + "/{service}/{method}", call)


def to_json(result: Any) -> Any:
    if isinstance(result, FaultHandle):
        return {"fault_id": result.id, "kind": result.fault.kind}
    if isinstance(result, list) and result and isinstance(result[0], RequestRecord):
        return [r.to_json() for r in result]
    if isinstance(result, dict) and result and isinstance(next(iter(result)), tuple):
        return [{"route": k[0], "status": k[1], "count": v} for k, v in result.items()]
    return result
