"""The headers every admin API answer carries: the daemon's role, and no caching.

Plain ASGI, not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs each
request's app in a task group of its own and passes the body through a memory stream,
a cost on every request (the dashboard's polling, the schemathesis run: issue 26) for
two headers.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AnswerHeaders:
    def __init__(self, app: ASGIApp, role: Callable[[], str]) -> None:
        self.app = app
        self.role = role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Groupsync-Role"] = self.role()
                headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
