"""Faults injected into the admin API itself, for tests of its clients (the dashboard).

Off unless ``ADMIN_FAULT_INJECTION`` is set (like ``TIME_SCALE``, a setting for tests).
A fault makes the next ``count`` requests of a lane answer ``status`` (503 or 429) with
``Retry-After``; with ``after`` the request is carried out first and only its answer is
replaced, as when a proxy loses the response: the client cannot tell whether it ran, so
it must retry with the same ``Idempotency-Key``.

Control: ``POST /_test/faults`` {"lane", "status", "count", "after", "retry_after"} and
``DELETE /_test/faults`` (bearer token required, not rate limited).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from core.admin.api.ratelimit import Lane
from core.observability import get_logger

log = get_logger("groupsync.admin.api")


@dataclass
class InjectedFault:
    lane: Lane
    status: int
    count: int
    after: bool = False
    retry_after: int = 1

    def __post_init__(self) -> None:
        if self.status not in (429, 503):
            raise ValueError("status must be 429 or 503")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.retry_after < 0:
            raise ValueError("retry_after must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "lane": self.lane.value}


class AdminFaults:
    def __init__(self) -> None:
        self._faults: list[InjectedFault] = []

    def add(self, fault: InjectedFault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[InjectedFault]:
        return list(self._faults)

    def take(self, lane: Lane) -> InjectedFault | None:
        """The fault this request meets, using up one of its count."""
        for fault in self._faults:
            if fault.lane is lane:
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None


class FaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lane: Lane
    status: int = Field(503, description="429 or 503")
    count: int = Field(1, ge=1, le=1000)
    after: bool = Field(False, description="carry the request out, then lose its answer")
    retry_after: int = Field(1, ge=0, le=3600)


def fault_router(faults: AdminFaults, operator: Callable[..., Any]) -> APIRouter:
    """``POST``/``GET``/``DELETE /_test/faults``; ``operator`` is the API's auth dependency."""
    router = APIRouter(prefix="/_test", include_in_schema=False,
                       dependencies=[Depends(operator)])

    @router.post("/faults", status_code=201)
    async def add(body: FaultIn) -> dict[str, Any]:
        try:
            fault = InjectedFault(**body.model_dump())
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        faults.add(fault)
        log.warning("admin_fault_injected", **fault.to_json())
        return fault.to_json()

    @router.get("/faults")
    async def active() -> list[dict[str, Any]]:
        return [fault.to_json() for fault in faults.active()]

    @router.delete("/faults")
    async def clear() -> dict[str, int]:
        count = len(faults.active())
        faults.clear()
        return {"cleared": count}

    return router
