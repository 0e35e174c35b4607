"""A cap on every request body: 413 (a problem body) before more than the cap is read.

A declared ``Content-Length`` over the cap is refused without handing a byte of the
body to a route; a body without one (chunked) is read up to the cap, then refused, or
handed on whole. Either way no route ever holds more than ``ADMIN_MAX_BODY_BYTES`` of a
request.

After the refusal is written, what the client still sends is read and thrown away for a
few seconds (nginx's "lingering close"): closing a socket with unread data makes the
kernel answer with a reset, and the client would lose the 413 it had not yet read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# How long a refused body is read and discarded so the client can read the answer.
LINGER_SECONDS = 5.0


class BodyCap:
    def __init__(self, app: ASGIApp, max_bytes: int, linger_seconds: float = LINGER_SECONDS
                 ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.linger_seconds = linger_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = self.max_bytes + 1
            if size > self.max_bytes:
                await self._refuse(receive, send)
                return
            await self.app(scope, receive, send)
            return
        await self._read_capped(scope, receive, send)

    async def _read_capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(receive, send, ended=not message.get("more_body"))
                return
            if not message.get("more_body"):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, receive: Receive, send: Send, *, ended: bool = False) -> None:
        body = json.dumps({
            "type": "about:blank", "title": "Request body too large", "status": 413,
            "detail": f"the admin API reads at most {self.max_bytes} bytes of a request body "
                      "(ADMIN_MAX_BODY_BYTES)",
        }).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        # The whole answer goes out now; the response ends once the rest is discarded.
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if not ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_discard(receive), timeout=self.linger_seconds)
        await send({"type": "http.response.body", "body": b""})


async def _discard(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return
