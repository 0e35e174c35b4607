"""Database outages: recognise them, say so once, and pace the reconnects.

Every loop of a daemon (start-up, leadership, outbox sweep, lease renewal, recording)
meets the same outage. They share one ``DatabaseOutage`` per process, so an outage of any
length costs one log line when it begins, one when it ends (with its duration) and one
Sentry event, not one per key or per poll.
"""

from __future__ import annotations

import errno
import functools
import socket
import time
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError

from core.observability import get_logger

log = get_logger("groupsync.database")

RECONNECT_FIRST_SECONDS = 0.25
RECONNECT_CAP_SECONDS = 5.0  # work resumes within seconds of the database returning
RECONNECT_FLOOR_SECONDS = 0.05  # even at a tiny TIME_SCALE, never a busy loop

_NETWORK_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
    errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.EHOSTDOWN,
})
_CONNECTIVITY: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,
    socket.gaierror,  # the database host name does not resolve (DNS down)
)


@functools.cache
def _connectivity_errors() -> tuple[type[BaseException], ...]:
    # asyncpg's classes are loaded on first use: a SQLite CLI verb never needs them, and
    # importing asyncpg costs the operator's `status` a noticeable share of its second.
    import asyncpg

    return (
        *_CONNECTIVITY,
        asyncpg.PostgresConnectionError,  # connection does not exist, cannot connect now
        asyncpg.InterfaceError,  # "connection is closed"
        asyncpg.exceptions.AdminShutdownError,  # pg_terminate_backend, server shutdown
        asyncpg.exceptions.CannotConnectNowError,  # the server is starting up
    )


def is_database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database cannot be reached, as
    opposed to a query the database refused: only the former is an outage."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return True
            orig = current.orig
            if isinstance(orig, BaseException) and _is_connectivity(orig):
                return True
        elif _is_connectivity(current):
            return True
        # The explicit cause, else the implicit context unless ``raise … from None``
        # suppressed it (a refusal that merely happened while handling an OSError).
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return False


def _is_connectivity(exc: BaseException) -> bool:
    if isinstance(exc, _connectivity_errors()):
        return True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    # SQLAlchemy's asyncpg adapter re-raises asyncpg errors as its own classes and keeps
    # the original's class name in the message.
    text = f"{type(exc).__name__} {exc}"
    return any(
        name in text
        for name in ("ConnectionDoesNotExist", "AdminShutdown", "CannotConnectNow",
                     "connection is closed", "connection was closed")
    )


def reconnect_delay(attempt: int, time_scale: float = 1.0) -> float:
    """Capped exponential pacing of reconnect attempts: 0.25, 0.5, 1, 2, 4, 5, 5 … s."""
    seconds = min(RECONNECT_FIRST_SECONDS * 2 ** min(attempt, 16), RECONNECT_CAP_SECONDS)
    return float(max(seconds * time_scale, RECONNECT_FLOOR_SECONDS))


def _report(message: str) -> None:
    import sentry_sdk

    sentry_sdk.capture_message(message, level="error")


class DatabaseOutage:
    """Whether this process currently sees the database as down, and since when."""

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        report: Callable[[str], object] = _report,
    ) -> None:
        self._monotonic = monotonic
        self._report = report
        self._since: float | None = None
        self.count = 0  # outages seen by this process

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, where: str) -> None:
        """A loop could not reach the database. Only the first failure of an outage logs
        and reports; the rest are the same outage."""
        if self._since is not None:
            return
        self._since = self._monotonic()
        self.count += 1
        error = f"{type(exc).__name__}: {exc}"[:300]
        log.error("database_unavailable", error=error, where=where,
                  reconnect_cap_seconds=RECONNECT_CAP_SECONDS)
        self._report(f"database unavailable: {error}")

    def reachable(self) -> None:
        """A loop reached the database: ends the outage, if there was one."""
        if self._since is None:
            return
        duration = self._monotonic() - self._since
        self._since = None
        log.info("database_available", outage_seconds=round(duration, 1))
