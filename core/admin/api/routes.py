"""The /api routes: thin translations of HTTP to the admin service layer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from core.admin.api.auth import Operator, require_operator
from core.admin.api.idempotency import idempotent
from core.admin.attention import AttentionQuery
from core.admin.bulk import BulkScope
from core.admin.errors import Invalid
from core.admin.keys import KeyFilter
from core.admin.relative import MAX_PAUSE_SECONDS
from core.admin.service import AdminService
from core.db.models import SyncStatus

MAX_ID = 2**31 - 1
GroupId = Annotated[int, Path(ge=1, le=MAX_ID)]
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
# Sync types, services and scopes (a service or a sync type) are the registry's
# (core.syncers.types): checked by the service layer, listed as enums by the document.
NAME_LENGTH = 16
SyncTypeParam = Annotated[str, Path(max_length=NAME_LENGTH)]
ServiceParam = Annotated[str, Path(max_length=NAME_LENGTH)]
ScopeName = Annotated[str, Field(max_length=NAME_LENGTH)]
# Statuses name a key's status, or "failing" (both kinds).
KeyStatus = Literal["ok", "pending", "running", "retrying", "needs_attention", "held",
                    "failing"]
BulkStatus = Literal["failing", "retrying", "needs_attention"]
assert set(get_args(KeyStatus)) == {*(s.value for s in SyncStatus), "failing"}

router = APIRouter(prefix="/api", dependencies=[Depends(require_operator)])


async def _once(request: Request, service: AdminService, status: int,
                action: Callable[[], Awaitable[dict[str, Any]]]) -> JSONResponse:
    """Run an action once per ``Idempotency-Key``: a repeated request gets the first answer."""
    async def act() -> tuple[int, dict[str, Any]]:
        return status, await action()
    return await idempotent(request, service.session_factory, service.clock.now(), act)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeIn(Strict):
    service: ScopeName | None = Field(None, description="discord, calendar or a sync type")
    status: BulkStatus | None = Field(None,
                                      description="failing (default), retrying or needs_attention")

    def scope(self) -> BulkScope:
        return BulkScope(service=self.service, status=self.status)


class BulkIn(ScopeIn):
    confirm: Literal[True] = Field(description="must be true: the preview was shown and accepted")


class GroupIn(Strict):
    group_id: int = Field(ge=1, le=MAX_ID)


class ResyncIn(GroupIn):
    confirm: Literal[True] = Field(description="must be true: the preview was shown and accepted")


# Free text a database can store: no NUL (PostgreSQL refuses it) and no lone surrogates
# (not encodable as UTF-8), refused as 422 before they reach a statement.
# Escapes, not the characters: the document itself must stay encodable.
STORABLE_TEXT = r"^[^\x00\uD800-\uDFFF]*$"


class PauseIn(Strict):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    reason: str | None = Field(None, max_length=500, pattern=STORABLE_TEXT)
    for_seconds: int | None = Field(
        None, ge=1, le=MAX_PAUSE_SECONDS,
        description="end the pause by itself after this many (wall-clock) seconds; "
                    "absent: paused until resumed")


def service_of(request: Request) -> AdminService:
    service: AdminService = request.app.state.service
    return service


Service = Annotated[AdminService, Depends(service_of)]
Caller = Annotated[Operator, Depends(require_operator)]


def _require_confirm(confirm: bool) -> None:
    if confirm is not True:
        raise Invalid("confirm must be true (look at the preview first)")


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@router.get("/overview", summary="Services, their pause, breaker and rate-limit state; daemons")
async def overview(service: Service) -> dict[str, Any]:
    return await service.overview()


@router.get("/keys", summary="Sync keys with filters and pagination")
async def list_keys(
    service: Service,
    service_name: Annotated[str | None, Query(alias="service", max_length=NAME_LENGTH)] = None,
    status: Annotated[KeyStatus | None, Query()] = None,
    group_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    failing_since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    where = KeyFilter(service=service_name, status=status, group_id=group_id,
                      failing_since=_aware(failing_since))
    return await service.list_keys(where, limit, offset)


@router.get("/keys/{sync_type}/{group_id}", summary="One key with its recent attempts")
async def key_detail(service: Service, sync_type: SyncTypeParam, group_id: GroupId
                     ) -> dict[str, Any]:
    return await service.key(sync_type, group_id)


@router.post("/keys/{sync_type}/{group_id}/retry", status_code=202,
             summary="Run one key now (409 while it runs or when it is already due)",
             responses={404: {"description": "unknown group"}, 409: {"description": "busy"}})
async def retry(request: Request, service: Service, caller: Caller,
                sync_type: SyncTypeParam, group_id: GroupId) -> JSONResponse:
    return await _once(request, service, 202,
                       lambda: service.retry(sync_type, group_id, via=caller.via,
                                             who=_client(request)))


@router.post("/bulk-retry/preview", summary="How many groups, keys and calls a bulk retry means")
async def bulk_preview(service: Service, body: ScopeIn) -> dict[str, Any]:
    return await service.bulk_preview(body.scope())


@router.post("/bulk-retry", status_code=202, summary="Start a durable bulk retry job")
async def bulk_retry(request: Request, service: Service, caller: Caller, body: BulkIn
                     ) -> JSONResponse:
    _require_confirm(body.confirm)

    async def start() -> dict[str, Any]:
        return {"job": await service.bulk_start(body.scope(), via=caller.via,
                                                who=_client(request))}
    return await _once(request, service, 202, start)


@router.get("/bulk-jobs", summary="Recent bulk jobs with their progress")
async def bulk_jobs(service: Service) -> dict[str, Any]:
    return {"items": await service.bulk_jobs()}


@router.get("/bulk-jobs/{job_id}", summary="One bulk job's progress")
async def bulk_job(service: Service, job_id: JobId) -> dict[str, Any]:
    return await service.bulk_job(job_id)


@router.post("/bulk-jobs/{job_id}/cancel", summary="Cancel what has not started yet")
async def bulk_cancel(request: Request, service: Service, caller: Caller, job_id: JobId
                      ) -> JSONResponse:
    return await _once(request, service, 200,
                       lambda: service.bulk_cancel(job_id, via=caller.via,
                                                   who=_client(request)))


@router.post("/resync/preview", summary="What a force re-sync of a group will send")
async def resync_preview(service: Service, body: GroupIn) -> dict[str, Any]:
    return await service.resync_preview(body.group_id)


@router.post("/resync", status_code=202, summary="Force re-sync: forget records, send again")
async def resync(request: Request, service: Service, caller: Caller, body: ResyncIn
                 ) -> JSONResponse:
    _require_confirm(body.confirm)
    return await _once(request, service, 202,
                       lambda: service.resync(body.group_id, via=caller.via,
                                              who=_client(request)))


@router.post("/services/{name}/pause", summary="Pause a service: no calls, keys stay owed")
async def pause(request: Request, service: Service, caller: Caller, name: ServiceParam,
                body: PauseIn | None = None) -> JSONResponse:
    reason = body.reason if body else None
    for_seconds = body.for_seconds if body else None
    return await _once(request, service, 200,
                       lambda: service.pause(name, via=caller.via, reason=reason,
                                             who=_client(request), for_seconds=for_seconds))


@router.post("/services/{name}/resume", summary="Resume a paused service")
async def resume(request: Request, service: Service, caller: Caller, name: ServiceParam
                 ) -> JSONResponse:
    return await _once(request, service, 200,
                       lambda: service.resume(name, via=caller.via, who=_client(request)))


@router.post("/services/{name}/breaker/reset", summary="Close a service's circuit breaker")
async def breaker_reset(request: Request, service: Service, caller: Caller, name: ServiceParam
                        ) -> JSONResponse:
    return await _once(request, service, 200,
                       lambda: service.reset_breaker(name, via=caller.via,
                                                     who=_client(request)))


@router.get("/held", summary="Syncs the deletion guard holds, with their plans and users")
async def held(service: Service) -> dict[str, Any]:
    return {"items": await service.held()}


@router.post("/held/{sync_type}/{group_id}/approve",
             summary="Apply a held plan (re-planned if the membership changed since)",
             responses={404: {"description": "the key is not held"}})
async def approve(request: Request, service: Service, caller: Caller,
                  sync_type: SyncTypeParam, group_id: GroupId) -> JSONResponse:
    who = _client(request)
    return await _once(request, service, 200,
                       lambda: service.approve(sync_type, group_id, via=caller.via, who=who))


@router.post("/held/{sync_type}/{group_id}/reject",
             summary="Keep a held key held until its membership changes",
             responses={404: {"description": "the key is not held"}})
async def reject(request: Request, service: Service, caller: Caller,
                 sync_type: SyncTypeParam, group_id: GroupId) -> JSONResponse:
    who = _client(request)
    return await _once(request, service, 200,
                       lambda: service.reject(sync_type, group_id, via=caller.via, who=who))


# ---- the needs-attention set and the operators' trail (issue 23) ------------------------------
class AckIn(Strict):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    note: str = Field(min_length=1, max_length=500, pattern=STORABLE_TEXT,
                      description="what is being done about it; shown to every operator")
    by: str | None = Field(None, max_length=80, pattern=STORABLE_TEXT,
                           description="the operator's name, shown beside the note")


@router.get("/attention", summary="The needs-attention set: search, acknowledgements, new ones",
            responses={422: {"description": "a search text or time that cannot be used"}})
async def attention_set(
    service: Service,
    q: Annotated[str | None, Query(max_length=200, description=(
        "case-insensitive part of the last error, the group's name or ids, a member's "
        "id, e-mail or name, the note, the sync type or service; a number is a group id"
    ))] = None,
    since: Annotated[datetime | None, Query(
        description="count (and mark) the keys that entered the set after this time")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    return await service.attention(AttentionQuery(
        text=_storable(q, "q"), since=_utc(since, "since"), limit=limit, offset=offset))


@router.post("/attention/{sync_type}/{group_id}/ack",
             summary="Acknowledge a key in the set with a note (cleared by its next success)",
             responses={404: {"description": "unknown group or no such key"},
                        409: {"description": "the key is not in the needs-attention set"}})
async def acknowledge(request: Request, service: Service, caller: Caller,
                      sync_type: SyncTypeParam, group_id: GroupId, body: AckIn
                      ) -> JSONResponse:
    address = _client(request)
    who = f"{body.by} ({address})" if body.by and body.by.strip() else address
    return await _once(request, service, 200,
                       lambda: service.acknowledge(sync_type, group_id, body.note,
                                                   via=caller.via, who=who))


@router.get("/audit", summary="Operator actions, newest first: who, what, when, result")
async def audit_log(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    return {"items": await service.audit_log(limit, before_id)}


def _storable(value: str | None, name: str) -> str | None:
    if value is not None and ("\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)):
        raise Invalid(f"{name} holds a character that cannot be searched for (NUL)")
    return value


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise Invalid(f"{name} is not a time that can be compared") from None


def _client(request: Request) -> str | None:
    """Who decided, for the audit line: the caller's address (one token: no user names)."""
    return request.client.host if request.client else None


# ---- the group page (issue 23) -----------------------------------------------------------------
class SyncNowIn(Strict):
    confirm: Literal[True] = Field(
        description="must be true: the dry run (…/sync/preview) was shown and accepted")


@router.get("/groups", summary="Find groups by id or part of the name (any case)",
            responses={422: {"description": "no search text"}})
async def find_groups(
    service: Service,
    q: Annotated[str, Query(max_length=200, description="a group id or part of its name")],
) -> dict[str, Any]:
    return {"items": await service.find_groups(_storable(q, "q") or "")}


@router.get("/groups/{group_id}",
            summary="One group: members, each sync type's key and why it waits, attempts",
            responses={404: {"description": "unknown group"}})
async def group_detail(service: Service, group_id: GroupId) -> dict[str, Any]:
    return await service.group(group_id)


@router.get("/groups/{group_id}/live",
            summary="Read the group's live state now (background lane): desired, live and "
                    "the difference item by item, with the time read",
            responses={404: {"description": "unknown group"},
                       503: {"description": "not the active daemon (it holds the clients)"}})
async def group_live(service: Service, group_id: GroupId) -> dict[str, Any]:
    return await service.group_live(group_id)


@router.post("/groups/{group_id}/sync/preview",
             summary="Sync now, dry run: read live state and list the items it would send",
             responses={404: {"description": "unknown group"}})
async def sync_now_preview(service: Service, group_id: GroupId) -> dict[str, Any]:
    return await service.sync_now_preview(group_id)


@router.post("/groups/{group_id}/sync",
             summary="Sync now: run every sync type of the group on the active daemon, "
                     "with a step trace (load membership, read, plan, each call's answer)",
             responses={404: {"description": "unknown group"}})
async def sync_now(request: Request, service: Service, caller: Caller, group_id: GroupId,
                   body: SyncNowIn) -> JSONResponse:
    _require_confirm(body.confirm)
    return await _once(request, service, 200,
                       lambda: service.sync_now(group_id, via=caller.via,
                                                who=_client(request)))
