"""Who may call the admin API: one FastAPI dependency, ``require_operator``.

A bearer token equal to ADMIN_TOKEN (compared in constant time) is the API's own way in.
Other ways (the dashboard's session cookie with its CSRF check) are added as extra
checks on ``app.state.auth_checks``: each returns an ``Operator``, or None when its
credentials are absent, or raises 401/403 when they are present but wrong.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="groupsync"'}


@dataclass(frozen=True)
class Operator:
    via: str  # the interface, for the audit line: "api", "dashboard"


AuthCheck = Callable[[Request], Awaitable[Operator | None]]


def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def bearer_operator(request: Request) -> Operator | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    expected: str | None = request.app.state.admin_token
    if scheme.lower() != "bearer" or not token or expected is None:
        raise _unauthorized("a bearer token is required")
    if not token_matches(token.strip(), expected):
        raise _unauthorized("wrong token")
    return Operator(via="api")


async def require_operator(request: Request) -> Operator:
    for check in (bearer_operator, *request.app.state.auth_checks):
        operator: Operator | None = await check(request)
        if operator is not None:
            return operator
    if request.app.state.admin_token is None:
        raise _unauthorized("the admin API needs ADMIN_TOKEN to be set on the daemon")
    raise _unauthorized("send Authorization: Bearer <ADMIN_TOKEN>")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers=UNAUTHORIZED_HEADERS)
