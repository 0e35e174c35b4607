"""Faults injected into the admin API itself, for tests of its clients (the dashboard).

Not part of the admin API: an ASGI middleware a test daemon loads by name
(``ADMIN_MIDDLEWARE=core.sandbox.admin_faults:AdminFaultInjection``, like
``SYNCER_FACTORY``); no production module imports it (an import-linter contract says so).

A fault makes the next ``count`` requests of a lane (reads: GET/HEAD/OPTIONS, actions:
the rest, on ``/api/`` and ``/login``) answer ``status`` (503 or 429) with
``Retry-After``; with ``after`` the request is carried out first and only its answer is
replaced, as when a proxy loses the response: the client cannot tell whether it ran, so
it must retry with the same ``Idempotency-Key``.

Control (bearer token required, never faulted): ``POST /_test/faults``
{"lane", "status", "count", "after", "retry_after"}, ``GET /_test/faults`` (the faults
still armed) and ``DELETE /_test/faults``.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("groupsync.sandbox.admin_faults")

CONTROL_PATH = "/_test/faults"
FAULTED_PREFIXES = ("/api/", "/login")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LANES = ("reads", "actions")
MAX_CONTROL_BODY = 4096


@dataclass
class InjectedFault:
    lane: str
    status: int = 503
    count: int = 1
    after: bool = False
    retry_after: int = 1

    def __post_init__(self) -> None:
        if self.lane not in LANES:
            raise ValueError(f"lane must be one of {', '.join(LANES)}")
        if self.status not in (429, 503):
            raise ValueError("status must be 429 or 503")
        if not 1 <= self.count <= 1000:
            raise ValueError("count must be between 1 and 1000")
        if not 0 <= self.retry_after <= 3600:
            raise ValueError("retry_after must be between 0 and 3600")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AdminFaults:
    def __init__(self) -> None:
        self._faults: list[InjectedFault] = []

    def add(self, fault: InjectedFault) -> None:
        self._faults.append(fault)

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        return count

    def active(self) -> list[InjectedFault]:
        return list(self._faults)

    def take(self, lane: str) -> InjectedFault | None:
        """The fault this request meets, using up one of its count."""
        for fault in self._faults:
            if fault.lane == lane:
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None


class AdminFaultInjection:
    """The middleware: the control routes, then the armed faults, then the admin API."""

    def __init__(self, app: ASGIApp, faults: AdminFaults | None = None) -> None:
        self.app = app
        self.faults = faults or AdminFaults()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == CONTROL_PATH:
            await self._control(scope, receive, send)
            return
        if not scope["path"].startswith(FAULTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        lane = "reads" if scope["method"].upper() in READ_METHODS else "actions"
        fault = self.faults.take(lane)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.after:
            async def swallow(_message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
        title = "Service unavailable" if fault.status == 503 else "Too many requests"
        await _send(send, fault.status, {
            "type": "about:blank", "title": title, "status": fault.status,
            "detail": "injected fault", "lane": lane, "retry_after": fault.retry_after,
        }, retry_after=fault.retry_after, lane=lane)

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _authorized(scope):
            await _send(send, 401, {"type": "about:blank", "title": "Unauthorized",
                                    "status": 401, "detail": "send the admin bearer token"})
            return
        method = scope["method"].upper()
        if method == "GET":
            await _send(send, 200, [f.to_json() for f in self.faults.active()])
        elif method == "DELETE":
            await _send(send, 200, {"cleared": self.faults.clear()})
        elif method == "POST":
            try:
                fault = InjectedFault(**json.loads(await _body(receive)))
            except (ValueError, TypeError) as exc:
                await _send(send, 422, {"type": "about:blank", "title": "Invalid request",
                                        "status": 422, "detail": str(exc)})
                return
            self.faults.add(fault)
            log.warning("admin_fault_injected %s", fault.to_json())
            await _send(send, 201, fault.to_json())
        else:
            await _send(send, 405, {"type": "about:blank", "title": "Method not allowed",
                                    "status": 405, "detail": method})


def _authorized(scope: Scope) -> bool:
    app: Any = scope.get("app")
    expected: str | None = getattr(getattr(app, "state", None), "admin_token", None)
    header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), str(expected).encode())


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_CONTROL_BODY:
            raise ValueError("body too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Send, status: int, body: Any, *, retry_after: int | None = None,
                lane: str | None = None) -> None:
    data = json.dumps(body).encode()
    kind = b"application/problem+json" if status >= 400 else b"application/json"
    headers = [(b"content-type", kind), (b"content-length", str(len(data)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    if lane is not None:
        headers.append((b"x-ratelimit-lane", lane.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
