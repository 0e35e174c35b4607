"""``POST /calendar/push``: where CALENDAR_PUSH_URL must lead (the operator's proxy routes
the public HTTPS URL here). No operator sign-in: Google cannot send one; the channel token
is the credential (core/admin/push.py). Outside ``/api/`` so the operators' rate limits do
not drop a burst of notifications.

A believed notification answers 204 (Google treats any 2xx as delivered); a refused one
401 with a problem body and one log line naming the channel, never the token (Google does
not retry a 4xx).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from core.admin import push
from core.admin.api.problems import problem
from core.admin.service import AdminService
from core.observability import get_logger

log = get_logger("groupsync.admin.push")
PUSH_PATH = "/calendar/push"
MAX_ID = 64  # Google's channel ids are at most 64 characters; longer ones are not logged whole

router = APIRouter()


@router.post(PUSH_PATH, include_in_schema=False, status_code=204, response_model=None)
async def calendar_push(request: Request) -> Response | JSONResponse:
    service: AdminService = request.app.state.service
    headers = request.headers
    note = push.Notification(headers.get("x-goog-channel-id"),
                             headers.get("x-goog-channel-token"),
                             headers.get("x-goog-resource-state"))
    verdict = await push.verify(service.session_factory, note)
    if not verdict.believed:
        log.warning("calendar_push_refused", channel_id=(note.channel_id or "")[:MAX_ID],
                    why=verdict.why, client=request.client.host if request.client else None)
        return problem(401, "Unauthorized", f"notification refused: {verdict.why}")
    assert verdict.calendar_id is not None
    runtime = service.live.runtime()
    woke = note.resource_state != "sync" and runtime is not None
    if woke and runtime is not None:
        runtime.calendar_wakes.wake(verdict.calendar_id)
    log.info("calendar_push_received", channel_id=note.channel_id,
             calendar_id=verdict.calendar_id, state=note.resource_state, woke=woke)
    return Response(status_code=204)
