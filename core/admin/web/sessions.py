"""Dashboard sessions: the admin token is exchanged once for a session cookie.

The cookie holds a random session id (HttpOnly, SameSite=Strict, Secure over https); the
server keeps, per session, its expiry and a CSRF token. The page gets the CSRF token
rendered into it and sends it back as ``X-CSRF-Token`` on every mutating request, so a
request forged from another site (which cannot read the page) is refused even if a
browser were to send the cookie. The admin token itself is only ever compared, never
stored in a session, rendered or logged.

Sessions live in the daemon's memory: a restart signs everyone out, and logout revokes
the session at once.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
from pydantic import SecretStr

from core.admin.api.auth import Operator
from core.admin.api.ratelimit import SESSION_COOKIE

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_SESSIONS = 256

__all__ = ["CSRF_HEADER", "SAFE_METHODS", "SESSION_COOKIE", "Session", "SessionStore",
           "session_grants", "session_operator", "token_matches"]


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires_at: float  # monotonic seconds


class SessionStore:
    def __init__(
        self, ttl_seconds: float = 12 * 3600, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._sessions: dict[str, Session] = {}

    def create(self) -> Session:
        now = self.monotonic()
        self._forget_expired(now)
        while len(self._sessions) >= MAX_SESSIONS:  # oldest first (dicts keep order)
            del self._sessions[next(iter(self._sessions))]
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            expires_at=now + self.ttl_seconds,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self.monotonic():
            del self._sessions[session_id]
            return None
        return session

    def revoke(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            session.csrf.encode(), presented.encode()
        )

    def _forget_expired(self, now: float) -> None:
        for session_id in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[session_id]


def token_matches(expected: SecretStr | None, presented: str | None) -> bool:
    """Constant-time comparison of a presented admin token with the configured one."""
    if expected is None or not presented:
        return False
    return hmac.compare_digest(expected.get_secret_value().encode(), presented.encode())


def session_grants(request: Request) -> bool:
    """Whether the request is signed in through the dashboard's session cookie.

    A mutating request must also carry the session's CSRF token in ``X-CSRF-Token``;
    without it the answer is 403 (a live cookie alone proves nothing: a browser may send
    it on a request another site forged).
    """
    store: SessionStore | None = getattr(request.app.state, "sessions", None)
    if store is None:
        return False
    session = store.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return False
    if request.method.upper() not in SAFE_METHODS and not store.csrf_ok(
        session, request.headers.get(CSRF_HEADER)
    ):
        raise HTTPException(
            status_code=403,
            detail=f"CSRF token missing or wrong: send the page's token in {CSRF_HEADER}",
        )
    return True


async def session_operator(request: Request) -> Operator | None:
    """The admin API's auth check for the dashboard (one of ``app.state.auth_checks``)."""
    return Operator(via="dashboard") if session_grants(request) else None
