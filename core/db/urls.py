"""Database URL forms: every documented spelling becomes one SQLAlchemy async URL.

Accepted: ``sqlite:///path``, ``sqlite+aiosqlite:///path``, ``postgresql://``,
``postgres://``, ``postgresql+asyncpg://``. libpq's ``sslmode=…`` (what hosting
providers hand out) becomes asyncpg's ``ssl=…`` for SQLAlchemy, and goes back to
``sslmode`` in the plain DSN that asyncpg's own ``connect`` parses (leadership, LISTEN).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"
_SCHEMES = {
    "sqlite": SQLITE_DRIVER,
    SQLITE_DRIVER: SQLITE_DRIVER,
    "postgres": POSTGRES_DRIVER,
    "postgresql": POSTGRES_DRIVER,
    POSTGRES_DRIVER: POSTGRES_DRIVER,
}
FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"
# libpq's sslmode values; asyncpg's ssl= takes the same words.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def normalize_database_url(raw: str) -> str:
    """The SQLAlchemy async URL for ``raw``; ValueError names what is wrong."""
    raw = raw.strip()
    scheme, sep, _rest = raw.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise ValueError(f"must be {FORMS} (unsupported scheme {scheme!r})")
    try:
        url = make_url(_SCHEMES[scheme] + "://" + raw.split("://", 1)[1])
    except ArgumentError as exc:
        raise ValueError(f"is not a valid URL ({exc}); expected {FORMS}") from None
    if url.get_backend_name() == "sqlite":
        if not url.database:
            raise ValueError("names no SQLite file; use sqlite:///PATH (e.g. sqlite:///./var/groupsync.db)")
    else:
        url = _ssl_for_asyncpg(url)
        if not url.database:
            raise ValueError("names no PostgreSQL database; add /DBNAME after the host")
    return url.render_as_string(hide_password=False)


def _ssl_for_asyncpg(url: URL) -> URL:
    query = dict(url.query)
    mode = query.pop("sslmode", None)
    if mode is None:
        return url
    if isinstance(mode, tuple):
        mode = mode[-1]
    if mode not in SSL_MODES:
        raise ValueError(f"has sslmode={mode!r}; use one of {', '.join(SSL_MODES)}")
    query.setdefault("ssl", mode)
    return url.set(query=query)


def asyncpg_dsn(database_url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg.connect parses (ssl= back to sslmode=)."""
    url = make_url(database_url).set(drivername="postgresql")
    query = dict(url.query)
    ssl = query.pop("ssl", None)
    if ssl is not None:
        query["sslmode"] = ssl
    return url.set(query=query).render_as_string(hide_password=False)


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL and in-memory SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)

