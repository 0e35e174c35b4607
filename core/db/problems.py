"""One line for each way a database can be wrong, with the command or setting that fixes
it (DESIGN §6: the CLI prints it and exits 2; the hand-off path logs it).

``describe_database_error`` walks the exception chain (SQLAlchemy wraps the driver's
error, which may wrap the socket's) and recognises: a missing SQLite file, a schema that
is missing or not at head, an unknown revision, an unreachable server, refused
credentials and a database that does not exist. Anything else returns None from
``database_problem``, so the caller shows it as the bug it is.
"""

from __future__ import annotations

import errno
import re
import socket
import sqlite3
from collections.abc import Iterator

from core.db.session import MIGRATE_COMMAND, DatabaseFileMissing
from core.errors import GroupsyncError

FIX_URL = "check DATABASE_URL"
_UNREACHABLE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT,
                errno.ECONNRESET, errno.EADDRNOTAVAIL}


class SchemaNotCurrent(GroupsyncError):
    """The schema is missing, behind head, or at a revision this groupsync does not know."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps: SQLAlchemy's ``orig``, ``__cause__``,
    ``__context__`` (breadth first, each once)."""
    seen: set[int] = set()
    queue: list[BaseException] = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        context = None if current.__suppress_context__ else current.__context__  # `from None`
        for linked in (getattr(current, "orig", None), current.__cause__, context):
            if isinstance(linked, BaseException):
                queue.append(linked)


def database_problem(exc: BaseException) -> str | None:
    """The one-line explanation of a known database problem, or None."""
    for error in _chain(exc):
        line = _describe_one(error)
        if line is not None:
            return line
    return None


def describe_database_error(exc: BaseException) -> str:
    """``database_problem``, or the error's first line when it is not a known one."""
    first = (str(exc).splitlines() or [""])[0]
    return database_problem(exc) or f"{type(exc).__name__}: {first}"


def _describe_one(error: BaseException) -> str | None:
    return _schema_problem(error) or _access_problem(error) or _network_problem(error)


def _schema_problem(error: BaseException) -> str | None:
    """The database is there, its schema is not what this groupsync needs."""
    name, text = type(error).__name__, _text(error)
    if isinstance(error, DatabaseFileMissing | SchemaNotCurrent):
        return text
    if name == "CommandError" and "Can't locate revision" in text:
        return f"unknown database revision ({text}); {_unknown_revision_fix()}"
    if name == "UndefinedTableError" or (
        isinstance(error, sqlite3.OperationalError) and text.startswith("no such table")
    ):
        return f"the database has no groupsync schema ({text}); run {MIGRATE_COMMAND}"
    return None


def _access_problem(error: BaseException) -> str | None:
    """The server (or file) answers, and refuses us."""
    name, text = type(error).__name__, _text(error)
    if isinstance(error, sqlite3.OperationalError) and "unable to open database file" in text:
        return f"cannot open the SQLite file ({text}); {FIX_URL} and the folder's permissions"
    if name == "InvalidPasswordError" or "password authentication failed" in text:
        return f"the database refused the credentials ({text}); {FIX_URL} (user and password)"
    if name == "InvalidAuthorizationSpecificationError":
        return f"the database refused the connection ({text}); {FIX_URL} (user) and pg_hba.conf"
    if name == "InvalidCatalogNameError":
        return f"{text}; create it (e.g. `createdb`) or {FIX_URL}"
    return None


def _network_problem(error: BaseException) -> str | None:
    """Nothing answers where DATABASE_URL points."""
    name, text = type(error).__name__, _text(error)
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the database host ({error.strerror}); {FIX_URL}"
    if isinstance(error, ConnectionError | TimeoutError) or (
        isinstance(error, OSError) and error.errno in _UNREACHABLE
    ):
        return f"cannot reach the database server ({text}); start it or {FIX_URL}"
    if name in ("CannotConnectNowError", "ConnectionDoesNotExistError", "TooManyConnectionsError"):
        return f"the database server is not accepting connections ({text}); {FIX_URL} or retry"
    return None


def _text(error: BaseException) -> str:
    """The error's own words: first line, without SQLAlchemy's "(driver.Error) " prefix."""
    first = (str(error).splitlines() or [""])[0]
    return re.sub(r"^\([\w.]+\) ", "", first)


def _unknown_revision_fix() -> str:
    return (
        "the database was migrated by another groupsync version: install the version that "
        f"created it, or run {MIGRATE_COMMAND} with a revision this version knows"
    )


def unknown_revision(current: str, head: str) -> str:
    return (
        f"the database is at revision {current}, which this groupsync does not know "
        f"(its newest is {head}); {_unknown_revision_fix()}"
    )
