"""Idempotency-Key on mutating requests: performed once per key, the answer replayed.

The key (scoped by method and path) is claimed with a row before the action runs, so two
concurrent twins cannot both perform it: the second gets 409 until the first is done,
then the stored answer. A key reused with a different body is refused (422).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from core.admin.api.problems import PROBLEM_TYPE
from core.admin.errors import AdminError, Conflict, Invalid
from core.db.models import IdempotentRequest
from core.db.session import SessionFactory

HEADER = "Idempotency-Key"
MAX_KEY = 120
KEEP = timedelta(hours=24)
IN_PROGRESS = 0

Action = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


def _response(status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
    media = PROBLEM_TYPE if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media, headers=headers or None)


async def _perform(action: Action) -> tuple[int, dict[str, Any]]:
    try:
        return await action()
    except AdminError as exc:
        return exc.status, {"type": "about:blank", "title": exc.title, "status": exc.status,
                            "detail": str(exc)}


async def idempotent(
    request: Request, sessions: SessionFactory, now: datetime, action: Action
) -> JSONResponse:
    key = request.headers.get(HEADER)
    if key is None:
        return _response(*await _perform(action))
    if not key.strip() or len(key) > MAX_KEY:
        raise Invalid(f"{HEADER} must be 1 to {MAX_KEY} characters")
    scoped = f"{request.method} {request.url.path} {key}"[:200]
    fingerprint = hashlib.sha256(await request.body()).hexdigest()
    try:
        async with sessions() as session, session.begin():
            await session.execute(delete(IdempotentRequest).where(
                IdempotentRequest.created_at < now - KEEP))
            session.add(IdempotentRequest(key=scoped, fingerprint=fingerprint,
                                          status_code=IN_PROGRESS, body={}, created_at=now))
    except IntegrityError:
        async with sessions() as session:
            seen = await session.get(IdempotentRequest, scoped)
        if seen is None:
            raise Conflict(f"{HEADER} {key!r} is being used right now; try again") from None
        if seen.fingerprint != fingerprint:
            raise Invalid(f"{HEADER} {key!r} was used with a different request body") from None
        if seen.status_code == IN_PROGRESS:
            raise Conflict(f"a request with {HEADER} {key!r} is still in progress") from None
        return _response(seen.status_code, seen.body, **{"Idempotent-Replayed": "true"})
    try:
        status, body = await _perform(action)
    except BaseException:
        async with sessions() as session, session.begin():  # not performed: free the key
            await session.execute(delete(IdempotentRequest).where(IdempotentRequest.key == scoped))
        raise
    async with sessions() as session, session.begin():
        await session.execute(update(IdempotentRequest).where(IdempotentRequest.key == scoped)
                              .values(status_code=status, body=body))
    return _response(status, body)
